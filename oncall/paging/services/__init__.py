"""State changes for paging, one module per idea: lifecycle (start, acknowledge, stop an incident's pages), engine
(the escalation tick and its batched writes), recipients (whom a page reaches and how) and responders (added
teams and people). Every function here runs inside one
transaction and keeps these invariants:

- Lock order is incident row, then page rows, then notification rows. User actions (acknowledge, resolve,
  severity raise) lock the incident FOR UPDATE first (incidents.services does), then the pages. The timer ticks
  never wait: they claim page *and* incident rows with SKIP LOCKED, so a tick skips an incident a person is
  changing right now and picks it up on the next tick. Senders take FOR KEY SHARE on the incident and page while
  they send, so an acknowledgement commits only after every in-flight send has finished: never a notification
  after the acknowledgement is committed.
- A page never returns to ACTIVE once acknowledged or stopped (no reopened pages).
- Outbox rows are written in the transaction that decided to notify, with a unique idempotency key
  (page, level, repeat, recipient, channel, method), inserted with ON CONFLICT DO NOTHING: doing a step twice
  writes nothing twice.
"""
