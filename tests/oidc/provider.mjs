// A real OpenID Provider for the test suite: the `oidc-provider` package (OpenID Certified), listening on loopback.
//
//   OP_CONFIG='{"port": 0, "clients": [...], "accounts_file": "accounts.json"}' node tests/oidc/provider.mjs
//
// clients: oidc-provider client metadata (client_id, client_secret, redirect_uris, post_logout_redirect_uris).
// accounts_file: a JSON file {"<login>": {"password": "...", "claims": {"email": ..., "groups": [...]}}}, read at
// every sign-in and claims request, so a test can change a user at the provider; the login is the `sub`.
// Prints one line `LISTENING <issuer>` on stdout once the port is bound. Its pages load nothing from the network.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';

import Provider from 'oidc-provider';

const config = JSON.parse(process.env.OP_CONFIG || '{}');
const host = '127.0.0.1';
// A suite run with its clock shifted (TEST_CLOCK_SHIFT_DAYS) passes the shift, so tokens carry the portal's time.
const clockOffset = Number(config.clock_offset_seconds || 0) * 1000;
if (clockOffset) {
  const realNow = Date.now;
  Date.now = () => realNow() + clockOffset;
}

const loadAccounts = () => JSON.parse(readFileSync(config.accounts_file, 'utf8'));

const escape = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const page = (title, body) => `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>${escape(title)}</title>
</head><body><main><h1>${escape(title)}</h1>${body}</main></body></html>`;

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'test-op-rs256', use: 'sig', alg: 'RS256' };

function loginForm(uid, error = '') {
  return page('Sign in to the Test Identity Provider', `
    ${error ? `<p role="alert">${escape(error)}</p>` : ''}
    <form method="post" action="/interaction/${escape(uid)}/login" autocomplete="off">
      <label for="login">Username</label> <input id="login" name="login" required autofocus>
      <label for="password">Password</label> <input id="password" name="password" type="password" required>
      <button type="submit">Sign in</button>
    </form>`);
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) throw new Error('form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function start(issuer, port) {
  const provider = new Provider(issuer, {
    clients: config.clients || [],
    jwks: { keys: [signingKey] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    scopes: ['openid', 'email', 'profile', 'groups', 'offline_access'],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'given_name', 'family_name', 'preferred_username'],
      groups: ['groups'],
    },
    async findAccount(ctx, id) {
      const accounts = loadAccounts();
      if (!Object.hasOwn(accounts, id)) return undefined;
      const account = accounts[id];
      return { accountId: id, claims: async () => ({ sub: id, ...(account.claims || {}) }) };
    },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    // The portal is a first-party client: no consent screen, the grant covers what it asks for.
    async loadExistingGrant(ctx) {
      const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      if (grantId) return ctx.oidc.provider.Grant.find(grantId);
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.session.accountId,
      });
      grant.addOIDCScope(ctx.oidc.params.scope || 'openid');
      await grant.save();
      return grant;
    },
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      rpInitiatedLogout: {
        enabled: true,
        async logoutSource(ctx, form) {
          ctx.body = page('Sign out of the Test Identity Provider', `${form}
            <button type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>
            <button type="submit" form="op.logoutForm">No, stay signed in</button>`);
        },
        async postLogoutSuccessSource(ctx) {
          ctx.body = page('Signed out', '<p>You are signed out.</p>');
        },
      },
    },
    async renderError(ctx, out) {
      ctx.type = 'html';
      ctx.body = page('Error', `<p>${escape(out.error)}: ${escape(out.error_description || '')}</p>`);
    },
  });

  const server = http.createServer(async (req, res) => {
    const match = /^\/interaction\/([\w-]+)(\/login)?$/.exec(req.url.split('?')[0]);
    if (!match) return provider.callback()(req, res);
    try {
      const details = await provider.interactionDetails(req, res);
      res.setHeader('Content-Type', 'text/html; charset=utf-8');
      res.setHeader('Cache-Control', 'no-store');
      if (req.method === 'GET' && !match[2]) return res.end(loginForm(details.uid));
      if (req.method !== 'POST' || !match[2]) {
        res.statusCode = 405;
        return res.end(page('Method not allowed', ''));
      }
      const form = await readForm(req);
      const login = form.get('login') || '';
      const accounts = loadAccounts();
      const account = Object.hasOwn(accounts, login) ? accounts[login] : null;
      if (!account || account.password !== form.get('password')) {
        res.statusCode = 401;
        return res.end(loginForm(details.uid, 'Unknown username or wrong password.'));
      }
      return await provider.interactionFinished(req, res, { login: { accountId: login } }, {
        mergeWithLastSubmission: false,
      });
    } catch (error) {
      res.statusCode = 400;
      res.setHeader('Content-Type', 'text/html; charset=utf-8');
      return res.end(page('Interaction failed', `<p>${escape(error.message)}</p>`));
    }
  });
  server.listen(port, host, () => process.stdout.write(`LISTENING ${issuer}\n`));
  for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => server.close(() => process.exit(0)));
}

// The issuer names its port, so the port is chosen first (the tests pass a free one; 0 picks one here).
if (config.port) {
  start(`http://${host}:${config.port}`, config.port);
} else {
  const probe = http.createServer().listen(0, host, () => {
    const { port } = probe.address();
    probe.close(() => start(`http://${host}:${port}`, port));
  });
}
