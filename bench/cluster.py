"""The portal past one machine: hosts as network namespaces on a private bridge (bench/support/testbed.py), real
processes on each, and four scenarios that break hosts and links while work goes on.

    sudo .venv/bin/python bench/cluster.py [--incidents 2000] [--spread 60] [--alerts 50000] [--seconds 60]
        [--scenarios failover,beats,storm,netfault]          (root: it makes namespaces; `make cluster-test`)

1. failover: `--incidents` pages escalate over `--spread` seconds while webhooks arrive through the balancer;
   kill -9 every process of worker host wk1 at 30% of the window, of web host web1 at 60%. Every page delivered
   (a send in flight at the kill may repeat, once per killed sender process: counted as repeated_in_flight_at_kill;
   any other repeat fails), lateness p99 <= 2 s across the failover, every 2xx webhook stored. Then both hosts
   come back.
2. beats: both beats tick the whole time; `--beat-pages` escalations over `--beat-spread` seconds, one beat
   killed half-way: nothing doubled, lateness before and after the kill compared.
3. storm: `--alerts` alerts in `--seconds` over `--keys` dedup keys and `--services` services, from `--senders`
   senders through the balancer; alert-group pages probed, a P0 declared half-way.
4. netfault: the database host's link unplugged for `--outage` seconds while webhooks, a page viewer and due
   escalations go on: 503s (never a 500, never a false 2xx), then everything caught up, nothing lost or doubled.

A dead-man's-switch monitor on the client host counts the portal's pings (two beats the whole run: one a minute at
most, `RESULT scenario=deadman`). Each scenario prints `RESULT scenario=... k=v ...`; the last line is the overall
RESULT. The exit status is 1 when
anything was lost, doubled or answered 500 (correctness); missed time targets are printed (`targets_met=0`), and
fail the run only with --strict-timing, since the machine's two cores are shared.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from support.testbed import ROOT, SWITCH_PORT, Testbed  # noqa: E402
from support.traffic import SwitchMonitor  # noqa: E402

SCENARIOS = ("failover", "beats", "storm", "netfault")


def load() -> str:
    one, five, _fifteen = os.getloadavg()
    return f"{one:.1f}/{five:.1f}"


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--incidents", type=int, default=2000, help="failover: paging incidents")
    parser.add_argument("--spread", type=float, default=60.0, help="failover: escalations fall due over this")
    parser.add_argument("--webhook-rate", type=float, default=20.0, help="webhooks a second (failover, netfault)")
    parser.add_argument("--beat-pages", type=int, default=600)
    parser.add_argument("--beat-spread", type=float, default=30.0)
    parser.add_argument("--alerts", type=int, default=50_000, help="storm: alerts in all")
    parser.add_argument("--seconds", type=float, default=60.0, help="storm: sent over this many seconds")
    parser.add_argument("--keys", type=int, default=5000, help="storm: dedup keys")
    parser.add_argument("--services", type=int, default=40, help="storm: services")
    parser.add_argument("--senders", type=int, default=4, help="storm: sender processes (own integration each)")
    parser.add_argument("--batch", type=int, default=10, help="storm: alerts per webhook request")
    parser.add_argument("--outage", type=float, default=10.0, help="netfault: seconds the database host is away")
    parser.add_argument("--outage-pages", type=int, default=300, help="netfault: escalations due around the outage")
    parser.add_argument("--tick", type=float, default=0.5, help="TIMER_TICK_SECONDS of both beats")
    parser.add_argument("--web-workers", type=int, default=None, help="gunicorn workers per web host (config's)")
    parser.add_argument("--timeout", type=float, default=180.0, help="catch-up bound after each scenario's window")
    parser.add_argument("--strict-timing", action="store_true", help="missed time targets fail the run too")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs) afterwards")
    args = parser.parse_args(argv)
    args.scenarios = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    return args


def main(argv=None) -> int:
    args = parse(argv)
    if os.geteuid() != 0:
        print("bench/cluster.py makes network namespaces: run it as root (make cluster-test)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="cluster-"))
    bed = Testbed(work, tick=args.tick, web_workers=args.web_workers)
    results: list[dict] = []
    started = time.monotonic()
    try:
        bed.start()
        switch = SwitchMonitor(bed.net.addr("client"), SWITCH_PORT)
        switch_since = time.time()
        print(f"test bed up in {time.monotonic() - started:.0f}s (load {load()}); logs in {work}", flush=True)
        os.environ.update(bed.env)
        os.chdir(ROOT)
        import django

        django.setup()
        # The scenarios use the portal's models: imported once Django is set up.
        from support.cluster_netfault import netfault
        from support.cluster_scenarios import beats, failover
        from support.cluster_storm import storm

        run = {"failover": failover, "beats": beats, "storm": storm, "netfault": netfault}
        for name in args.scenarios:
            result = run[name](bed, args)
            results.append(result)
            print("RESULT " + " ".join(f"{k}={v}" for k, v in result.items()), flush=True)
        # Two beats tick the dead-man's switch the whole run (but for seconds of scenario 2): one ping a minute at
        # most (while healthy), not two.
        minutes = (time.time() - switch_since) / 60
        switch.stop()
        pings = {"scenario": "deadman", "pings": len(switch.hits), "minutes": f"{minutes:.1f}"}
        pings["correct"] = int(len(switch.hits) <= minutes + 1)
        results.append(pings)
        print("RESULT " + " ".join(f"{k}={v}" for k, v in pings.items()), flush=True)
    except KeyboardInterrupt:
        print("interrupted: stopping the test bed", file=sys.stderr)
        return 130
    finally:
        bed.stop()
        if not args.keep and not any(r.get("correct") == 0 for r in results):
            shutil.rmtree(work, ignore_errors=True)
        elif results:
            print(f"logs kept in {work}", file=sys.stderr)
    correct = all(r["correct"] for r in results) and len(results) == len(args.scenarios) + 1
    timely = all(r.get("targets_met", 1) for r in results)
    print(
        f"RESULT scenarios={len(results)} correct={int(correct)} targets_met={int(timely)} "
        f"seconds={time.monotonic() - started:.0f} load={load()}"
    )
    return 0 if correct and (timely or not args.strict_timing) else 1


if __name__ == "__main__":
    sys.exit(main())
