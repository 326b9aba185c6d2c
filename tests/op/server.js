// Test OpenID Provider for Latchkey's end-to-end tests.
//
// node-oidc-provider (exact pin in package.json) behind a tiny node:http front that adds:
//   * our own login / consent pages (devInteractions is disabled),
//   * counters of what the provider really served (/__admin/counters),
//   * fault injection on the token endpoint (/__admin/faults),
//   * runtime knobs (/__admin/config).
//
// Binds 127.0.0.1 only. Prints exactly one JSON line on stdout when ready; everything else
// goes to stderr. Exits when stdin closes (unless --no-stdin-watch), when --parent-pid dies,
// and on SIGTERM / SIGINT. See README.md.

import * as crypto from 'node:crypto';
import * as http from 'node:http';
import * as querystring from 'node:querystring';

// stdout carries exactly one line (the ready line): send every console message to stderr,
// before the library is loaded (it prints its notices with console.info).
console.log = console.error;
console.info = console.error;
console.debug = console.error;

const { default: Provider, errors: opErrors } = await import('oidc-provider');

// ---------------------------------------------------------------------------------------------
// Options

const HELP = `usage: node server.js [options]
  --port N                  listen on 127.0.0.1:N (default 0: a free port)
  --access-token-ttl S      access token lifetime in seconds (default 60)
  --id-token-ttl S          id token lifetime in seconds (default 3600)
  --refresh-token-ttl S     refresh token lifetime in seconds (default 86400)
  --clock-tolerance S       provider clock tolerance in seconds (default 0)
  --reuse-interval S        a consumed refresh token presented again within S seconds of its
                            first use is served (like Auth0/Okta's reuse interval) instead of
                            being treated as reuse (default 0: never)
  --no-stdin-watch          do not exit when stdin closes
  --oauth-metadata-only     serve the metadata only at /.well-known/oauth-authorization-server
                            (RFC 8414), answering 404 for /.well-known/openid-configuration
  --resource-indicators     RFC 8707: resources https://api.example/* get JWT access tokens
                            (scope api:read, aud = the resource); other resources invalid_target
  --parent-pid PID          exit when process PID is gone (checked every second)
Each option can also come from the environment: OP_PORT, OP_ACCESS_TOKEN_TTL, OP_ID_TOKEN_TTL,
OP_REFRESH_TOKEN_TTL, OP_CLOCK_TOLERANCE, OP_REUSE_INTERVAL, OP_NO_STDIN_WATCH=1, OP_PARENT_PID.`;

function parseOptions(argv, env) {
  const opts = {
    port: env.OP_PORT,
    accessTokenTtl: env.OP_ACCESS_TOKEN_TTL,
    idTokenTtl: env.OP_ID_TOKEN_TTL,
    refreshTokenTtl: env.OP_REFRESH_TOKEN_TTL,
    clockTolerance: env.OP_CLOCK_TOLERANCE,
    reuseInterval: env.OP_REUSE_INTERVAL,
    stdinWatch: !['1', 'true', 'yes'].includes(String(env.OP_NO_STDIN_WATCH || '').toLowerCase()),
    parentPid: env.OP_PARENT_PID,
  };
  const valued = {
    '--port': 'port',
    '--access-token-ttl': 'accessTokenTtl',
    '--id-token-ttl': 'idTokenTtl',
    '--refresh-token-ttl': 'refreshTokenTtl',
    '--clock-tolerance': 'clockTolerance',
    '--reuse-interval': 'reuseInterval',
    '--parent-pid': 'parentPid',
  };
  for (let i = 0; i < argv.length; i += 1) {
    let arg = argv[i];
    let value;
    const eq = arg.indexOf('=');
    if (arg.startsWith('--') && eq !== -1) {
      value = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    if (arg === '--help' || arg === '-h') {
      process.stderr.write(`${HELP}\n`);
      process.exit(0);
    } else if (arg === '--no-stdin-watch') {
      opts.stdinWatch = false;
    } else if (arg === '--oauth-metadata-only') {
      opts.oauthMetadataOnly = true;
    } else if (arg === '--resource-indicators') {
      opts.resourceIndicators = true;
    } else if (valued[arg]) {
      if (value === undefined) {
        i += 1;
        value = argv[i];
      }
      if (value === undefined) usage(`${arg} needs a value`);
      opts[valued[arg]] = value;
    } else {
      usage(`unknown argument: ${arg}`);
    }
  }
  const int = (name, v, dflt, min) => {
    if (v === undefined || v === '') return dflt;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) usage(`${name} must be an integer >= ${min}, got ${v}`);
    return n;
  };
  return {
    port: int('--port', opts.port, 0, 0),
    accessTokenTtl: int('--access-token-ttl', opts.accessTokenTtl, 60, 1),
    idTokenTtl: int('--id-token-ttl', opts.idTokenTtl, 3600, 1),
    refreshTokenTtl: int('--refresh-token-ttl', opts.refreshTokenTtl, 86400, 1),
    clockTolerance: int('--clock-tolerance', opts.clockTolerance, 0, 0),
    reuseInterval: int('--reuse-interval', opts.reuseInterval, 0, 0),
    stdinWatch: opts.stdinWatch,
    oauthMetadataOnly: opts.oauthMetadataOnly === true,
    resourceIndicators: opts.resourceIndicators === true,
    parentPid: int('--parent-pid', opts.parentPid, 0, 0),
  };
}

function usage(message) {
  process.stderr.write(`server.js: ${message}\n${HELP}\n`);
  process.exit(2);
}

const options = parseOptions(process.argv.slice(2), process.env);

// Mutable at runtime through POST /__admin/config.
const runtime = {
  accessTokenTtl: options.accessTokenTtl,
  idTokenTtl: options.idTokenTtl,
  refreshTokenTtl: options.refreshTokenTtl,
  reuseInterval: options.reuseInterval,
};

// ---------------------------------------------------------------------------------------------
// Lifetime: exit with stdin, with the parent, on signals.

function shutdown(code) {
  process.exit(code);
}

if (options.stdinWatch) {
  process.stdin.on('end', () => shutdown(0));
  process.stdin.on('close', () => shutdown(0));
  process.stdin.on('error', () => shutdown(0));
  process.stdin.resume();
}
if (options.parentPid) {
  setInterval(() => {
    try {
      process.kill(options.parentPid, 0);
    } catch (err) {
      if (err.code === 'ESRCH') shutdown(0);
    }
  }, 1000).unref();
}
process.on('SIGTERM', () => shutdown(0));
process.on('SIGINT', () => shutdown(0));
process.on('SIGHUP', () => shutdown(0));

// ---------------------------------------------------------------------------------------------
// Accounts

const ACCOUNTS = new Map([
  ['alice', { sub: 'alice', name: 'Alice Example', email: 'alice@example.com' }],
  ['bob', { sub: 'bob', name: 'Bob Example', email: 'bob@example.com' }],
]);

async function findAccount(_ctx, id) {
  const account = ACCOUNTS.get(id);
  if (!account) return undefined;
  return {
    accountId: id,
    async claims() {
      return {
        sub: account.sub,
        name: account.name,
        email: account.email,
        email_verified: true,
      };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Memory adapter without eviction. Every operation completes without yielding to the event loop,
// so a single request's find → consume sequence is not interleaved with another's storage calls
// any more than with the library's own adapter.

const GRANTABLE = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
]);

const store = new Map(); // key -> { payload, expiresAt (ms, Infinity if none) }
const grantMembers = new Map(); // grantId -> Set(key)
const sessionUids = new Map(); // uid -> id
const userCodes = new Map(); // userCode -> id

function epochTime() {
  return Math.floor(Date.now() / 1000);
}

function liveEntry(key) {
  const entry = store.get(key);
  if (!entry) return undefined;
  if (entry.expiresAt <= Date.now()) {
    removeKey(key);
    return undefined;
  }
  return entry;
}

function removeKey(key) {
  const entry = store.get(key);
  store.delete(key);
  if (!entry) return;
  const { payload } = entry;
  if (payload.grantId && grantMembers.has(payload.grantId)) {
    const members = grantMembers.get(payload.grantId);
    members.delete(key);
    if (members.size === 0) grantMembers.delete(payload.grantId);
  }
  if (payload.uid && sessionUids.get(payload.uid) === key.slice(key.indexOf(':') + 1)) {
    sessionUids.delete(payload.uid);
  }
  if (payload.userCode && userCodes.get(payload.userCode) === key.slice(key.indexOf(':') + 1)) {
    userCodes.delete(payload.userCode);
  }
}

class MemoryAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    if (store.has(key)) removeKey(key);
    const expiresAt = typeof expiresIn === 'number'
      ? Date.now() + (expiresIn + options.clockTolerance) * 1000
      : Infinity;
    store.set(key, { payload, expiresAt });
    if (this.model === 'Session' && payload.uid) sessionUids.set(payload.uid, id);
    if (payload.userCode) userCodes.set(payload.userCode, id);
    if (GRANTABLE.has(this.model) && payload.grantId) {
      if (!grantMembers.has(payload.grantId)) grantMembers.set(payload.grantId, new Set());
      grantMembers.get(payload.grantId).add(key);
    }
  }

  async find(id) {
    return liveEntry(this.key(id))?.payload;
  }

  async findByUid(uid) {
    const id = sessionUids.get(uid);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(userCode) {
    const id = userCodes.get(userCode);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    const entry = liveEntry(this.key(id));
    if (entry) entry.payload.consumed = epochTime();
  }

  async destroy(id) {
    removeKey(this.key(id));
  }

  async revokeByGrantId(grantId) {
    const members = grantMembers.get(grantId);
    if (!members) return;
    for (const key of [...members]) removeKey(key);
    grantMembers.delete(grantId);
  }
}

// Drop long-expired entries now and then so long runs stay small (never evicts live ones).
setInterval(() => {
  const now = Date.now();
  for (const [key, entry] of store) {
    if (entry.expiresAt <= now) removeKey(key);
  }
}, 30_000).unref();

// ---------------------------------------------------------------------------------------------
// Counters and faults

function zeroCounters() {
  return {
    refresh_grants: 0,
    code_grants: 0,
    reuse_detections: 0,
    token_errors: {},
    revocations: 0,
    userinfo: 0,
    faults_applied: 0,
    backchannel_logouts: 0,
    backchannel_logout_errors: 0,
    grants_revoked: 0,
    reuse_within_interval: 0,
  };
}

let counters = zeroCounters();
// SHA-256 of every refresh token presented in a refresh grant the provider served successfully
// (those tokens are consumed: rotation on every use) -> when it was first served (ms). Not
// cleared by /__admin/reset.
const consumedRefreshTokens = new Map();
let faults = [];

const FAULT_ENDPOINTS = new Set(['token', 'userinfo', 'revocation', 'introspection', 'registration']);

function sha256(value) {
  return crypto.createHash('sha256').update(String(value)).digest('base64url');
}

function validateFault(input) {
  if (!input || typeof input !== 'object') throw new Error('fault must be a JSON object');
  const fault = {
    endpoint: input.endpoint ?? 'token',
    grant_type: input.grant_type ?? undefined,
    kind: input.kind,
    when: input.when ?? 'before',
    status: input.status ?? 503,
    delay_ms: input.delay_ms ?? 0,
    count: input.count ?? 1,
    body: input.body ?? undefined,
    retry_after: input.retry_after ?? undefined,
  };
  if (!FAULT_ENDPOINTS.has(fault.endpoint)) throw new Error(`unknown endpoint ${fault.endpoint}`);
  if (!['status', 'delay', 'drop'].includes(fault.kind)) throw new Error('kind must be status, delay or drop');
  if (!['before', 'after'].includes(fault.when)) throw new Error('when must be before or after');
  if (!Number.isInteger(fault.status) || fault.status < 100 || fault.status > 599) throw new Error('bad status');
  if (!Number.isInteger(fault.delay_ms) || fault.delay_ms < 0) throw new Error('bad delay_ms');
  if (!Number.isInteger(fault.count) || fault.count < 1) throw new Error('count must be >= 1');
  if (fault.grant_type !== undefined && typeof fault.grant_type !== 'string') throw new Error('bad grant_type');
  if (fault.retry_after !== undefined && (!Number.isInteger(fault.retry_after) || fault.retry_after < 0)) {
    throw new Error('bad retry_after');
  }
  return fault;
}

// Takes one unit of the first pending fault that matches; returns a copy or undefined.
function takeFault(endpoint, grantType) {
  const index = faults.findIndex((f) => f.endpoint === endpoint
    && (f.grant_type === undefined || f.grant_type === grantType));
  if (index === -1) return undefined;
  const fault = faults[index];
  fault.count -= 1;
  if (fault.count <= 0) faults.splice(index, 1);
  return { ...fault };
}

// ---------------------------------------------------------------------------------------------
// Keys: RSA (RS256) and EC P-256 (ES256), made fresh on every start.

function makeJwks() {
  const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const rsaJwk = { ...rsa.privateKey.export({ format: 'jwk' }), alg: 'RS256', use: 'sig' };
  const ecJwk = { ...ec.privateKey.export({ format: 'jwk' }), alg: 'ES256', use: 'sig' };
  rsaJwk.kid = `rsa-${crypto.randomBytes(6).toString('hex')}`;
  ecJwk.kid = `ec-${crypto.randomBytes(6).toString('hex')}`;
  return { keys: [rsaJwk, ecJwk] };
}

// ---------------------------------------------------------------------------------------------
// Small HTML pages

function esc(value) {
  return String(value ?? '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

function page(title, body) {
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>${esc(title)}</title></head>
<body>
${body}
</body></html>
`;
}

function loginPage(uid, details, error) {
  const client = details.params.client_id;
  return page('Sign in', `<h1>Sign in</h1>
<p>to continue to <code>${esc(client)}</code></p>
${error ? `<p class="error" data-error="${esc(error)}">${esc(error)}</p>` : ''}
<form method="post" action="/interaction/${esc(uid)}/login" data-prompt="login">
  <input type="text" name="login" placeholder="alice or bob" autofocus>
  <button type="submit">Sign in</button>
</form>
<form method="post" action="/interaction/${esc(uid)}/abort" data-prompt="abort">
  <button type="submit">Cancel</button>
</form>`);
}

function consentPage(uid, details) {
  const { prompt, params } = details;
  const scopes = prompt.details.missingOIDCScope ?? [];
  const claims = prompt.details.missingOIDCClaims ?? [];
  return page('Authorize', `<h1>Authorize</h1>
<p><code>${esc(params.client_id)}</code> asks for access as <code>${esc(details.session?.accountId)}</code>.</p>
<p>Scopes: <span data-scopes="${esc(scopes.join(' '))}">${esc(scopes.join(' ') || '(none new)')}</span></p>
<p>Claims: ${esc(claims.join(' ') || '(none new)')}</p>
<form method="post" action="/interaction/${esc(uid)}/confirm" data-prompt="consent">
  <button type="submit" name="approve" value="yes" autofocus>Approve</button>
</form>
<form method="post" action="/interaction/${esc(uid)}/abort" data-prompt="abort">
  <button type="submit" name="deny" value="yes">Deny</button>
</form>`);
}

// ---------------------------------------------------------------------------------------------
// Start: listen first (to learn the port), then build the provider with the real issuer.

const server = http.createServer();
server.keepAliveTimeout = 5000;

server.listen(options.port, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = buildProvider(issuer);
  const providerCallback = provider.callback();
  server.on('request', (req, res) => {
    route(provider, providerCallback, req, res).catch((err) => {
      process.stderr.write(`server.js: ${err?.stack || err}\n`);
      if (!res.headersSent) {
        sendJson(res, 500, { error: 'server_error', error_description: String(err?.message || err) });
      } else {
        res.destroy();
      }
    });
  });
  process.stdout.write(`${JSON.stringify({ ready: true, issuer, admin: `${issuer}/__admin` })}\n`);
});

server.on('error', (err) => {
  process.stderr.write(`server.js: listen failed: ${err?.stack || err}\n`);
  process.exit(1);
});

function isLoopbackHost(hostname) {
  const h = hostname.replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
}

function buildProvider(issuer) {
  const configuration = {
    adapter: MemoryAdapter,
    findAccount,
    clients: [],
    jwks: makeJwks(),
    cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
    responseTypes: ['code'],
    scopes: ['openid', 'offline_access', 'profile', 'email'],
    claims: {
      openid: ['sub'],
      profile: ['name'],
      email: ['email', 'email_verified'],
    },
    clockTolerance: options.clockTolerance,
    features: {
      devInteractions: { enabled: false },
      registration: { enabled: true, initialAccessToken: false },
      revocation: { enabled: true },
      userinfo: { enabled: true },
      introspection: { enabled: true },
      backchannelLogout: { enabled: true },
      resourceIndicators: {
        enabled: true,
        useGrantedResource: async () => false,
        async getResourceServerInfo(_ctx, indicator) {
          if (!options.resourceIndicators || !indicator.startsWith('https://api.example/')) throw new opErrors.InvalidTarget();
          return { scope: 'api:read', audience: indicator, accessTokenFormat: 'jwt', accessTokenTTL: runtime.accessTokenTtl };
        },
      },
      rpInitiatedLogout: {
        enabled: true,
        async logoutSource(ctx, form) {
          ctx.body = page('Sign out', `<h1>Sign out?</h1>
${form}
<button type="submit" form="op.logoutForm" value="yes" name="logout" data-logout="yes">Yes, sign me out</button>
<button type="submit" form="op.logoutForm" data-logout="no">No, stay signed in</button>`);
        },
        async postLogoutSuccessSource(ctx) {
          ctx.body = page('Signed out', '<h1>Signed out</h1><p data-signed-out="yes">You are signed out.</p>');
        },
      },
    },
    pkce: { required: () => true },
    rotateRefreshToken: true,
    // Refresh tokens for every client allowed the refresh_token grant, offline_access or not.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    enabledJWA: {
      idTokenSigningAlgValues: ['RS256', 'ES256'],
    },
    ttl: {
      AccessToken: () => runtime.accessTokenTtl,
      IdToken: () => runtime.idTokenTtl,
      RefreshToken: () => runtime.refreshTokenTtl,
      AuthorizationCode: 60,
      Interaction: 3600,
      Session: 14 * 24 * 3600,
      Grant: 14 * 24 * 3600,
    },
    interactions: {
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    async renderError(ctx, out) {
      ctx.type = 'html';
      ctx.body = page('Error', `<h1>Error</h1>
<p data-error="${esc(out.error)}">${esc(out.error)}</p>
<p data-error-description="${esc(out.error_description)}">${esc(out.error_description)}</p>`);
    },
    // Tests only: let back-channel logout reach loopback listeners; refuse anything else.
    fetch: (url, init) => {
      const target = new URL(url);
      if (!isLoopbackHost(target.hostname)) {
        return Promise.reject(new Error(`test provider fetches only loopback URLs, not ${target.host}`));
      }
      const { dispatcher: _ignored, ...rest } = init;
      return globalThis.fetch(url, rest);
    },
  };

  const provider = new Provider(issuer, configuration);

  // The provider's own reuse signal, tied to the raw request so the front can count it.
  provider.on('grant.error', (ctx, err) => {
    if (err?.error_detail === 'refresh token already used' && ctx?.req) {
      ctx.req.latchkeyReuseSignal = true;
    }
  });
  provider.on('backchannel.success', () => { counters.backchannel_logouts += 1; });
  provider.on('backchannel.error', (_ctx, err) => {
    counters.backchannel_logout_errors += 1;
    process.stderr.write(`server.js: back-channel logout failed: ${err?.message || err}\n`);
  });
  provider.on('grant.revoked', () => { counters.grants_revoked += 1; });
  provider.on('server_error', (_ctx, err) => {
    process.stderr.write(`server.js: provider server_error: ${err?.stack || err}\n`);
  });
  return provider;
}

// ---------------------------------------------------------------------------------------------
// Routing

const INSTRUMENTED = new Map([
  ['/token', 'token'],
  ['/me', 'userinfo'],
  ['/token/revocation', 'revocation'],
  ['/token/introspection', 'introspection'],
  ['/reg', 'registration'],
]);

async function route(provider, providerCallback, req, res) {
  const url = new URL(req.url, 'http://127.0.0.1');
  const { pathname } = url;

  if (pathname === '/__admin' || pathname.startsWith('/__admin/')) {
    return admin(provider, req, res, pathname);
  }

  const interaction = /^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|confirm|abort))?\/?$/.exec(pathname);
  if (interaction) {
    return interactionRoute(provider, req, res, interaction[1], interaction[2]);
  }

  if (options.oauthMetadataOnly) {
    // An RFC 8414 authorization server: the same metadata, at the OAuth well-known path only.
    if (pathname === '/.well-known/openid-configuration') {
      return sendJson(res, 404, { error: 'not_found' });
    }
    if (pathname === '/.well-known/oauth-authorization-server') {
      req.url = '/.well-known/openid-configuration';
    }
  }

  const endpoint = INSTRUMENTED.get(pathname);
  if (endpoint) {
    return instrumented(provider, providerCallback, req, res, endpoint);
  }

  return providerCallback(req, res);
}

function readBody(req, limit = 64 * 1024) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > limit) {
        reject(new Error('request body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function sendJson(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

function sendHtml(res, status, html) {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(html),
  });
  res.end(html);
}

// ---------------------------------------------------------------------------------------------
// Login and consent

async function interactionRoute(provider, req, res, uid, action) {
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (err) {
    return sendHtml(res, 400, page('Error', `<h1>Error</h1><p data-error="interaction_not_found">${esc(err?.message || err)}</p>`));
  }
  if (details.uid !== uid) {
    return sendHtml(res, 400, page('Error', '<h1>Error</h1><p data-error="interaction_mismatch">interaction mismatch</p>'));
  }
  const { prompt } = details;

  if (req.method === 'GET' && action === undefined) {
    if (prompt.name === 'login') return sendHtml(res, 200, loginPage(uid, details));
    if (prompt.name === 'consent') return sendHtml(res, 200, consentPage(uid, details));
    return sendHtml(res, 400, page('Error', `<h1>Error</h1><p data-error="unknown_prompt">${esc(prompt.name)}</p>`));
  }
  if (req.method !== 'POST' || action === undefined) {
    return sendHtml(res, 405, page('Error', '<h1>Method not allowed</h1>'));
  }

  const form = querystring.parse((await readBody(req)).toString('utf8'));

  if (action === 'abort') {
    return provider.interactionFinished(req, res, {
      error: 'access_denied',
      error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
  }

  if (action === 'login') {
    if (prompt.name !== 'login') {
      return sendHtml(res, 400, page('Error', '<h1>Error</h1><p data-error="not_a_login_prompt">not a login prompt</p>'));
    }
    const login = String(form.login ?? '').trim().toLowerCase();
    if (!ACCOUNTS.has(login)) {
      return sendHtml(res, 200, loginPage(uid, details, `unknown user: ${login}`));
    }
    return provider.interactionFinished(req, res, {
      login: { accountId: login, remember: true },
    }, { mergeWithLastSubmission: false });
  }

  // action === 'confirm'
  if (prompt.name !== 'consent') {
    return sendHtml(res, 400, page('Error', '<h1>Error</h1><p data-error="not_a_consent_prompt">not a consent prompt</p>'));
  }
  const { params, session } = details;
  let grant;
  if (details.grantId) {
    grant = await provider.Grant.find(details.grantId);
  }
  if (!grant) {
    grant = new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  }
  const missing = prompt.details;
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  if (missing.missingResourceScopes) {
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes)) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
  }
  const grantId = await grant.save();
  return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

// ---------------------------------------------------------------------------------------------
// Instrumented provider endpoints: counters and fault injection.

function sleepUnlessClosed(ms, res) {
  return new Promise((resolve) => {
    if (res.destroyed || res.socket?.destroyed) {
      resolve(false);
      return;
    }
    const onClose = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      res.off('close', onClose);
      resolve(!(res.destroyed || res.socket?.destroyed));
    }, ms);
    res.once('close', onClose);
  });
}

function faultResponse(res, fault, write) {
  const body = fault.body ?? { error: 'temporarily_unavailable' };
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  for (const name of res.getHeaderNames()) res.removeHeader(name);
  res.statusCode = fault.status;
  res.setHeader('content-type', typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json; charset=utf-8');
  res.setHeader('cache-control', 'no-store');
  res.setHeader('content-length', Buffer.byteLength(text));
  if (fault.retry_after !== undefined) res.setHeader('retry-after', String(fault.retry_after));
  write(text);
}

async function instrumented(provider, providerCallback, req, res, endpoint) {
  let params = {};
  if (req.method === 'POST') {
    // Read the body here (to filter faults by grant_type and to see the refresh token), then
    // hand it to the provider through req.body, which its body parser accepts.
    const raw = await readBody(req);
    req.body = raw;
    if (String(req.headers['content-type'] || '').startsWith('application/x-www-form-urlencoded')) {
      params = querystring.parse(raw.toString('utf8'));
    }
  }
  const grantType = typeof params.grant_type === 'string' ? params.grant_type : undefined;
  const presentedRefresh = endpoint === 'token' && grantType === 'refresh_token' && typeof params.refresh_token === 'string'
    ? sha256(params.refresh_token)
    : undefined;

  const fault = takeFault(endpoint, grantType);

  // Reuse interval: a consumed refresh token presented again soon after its first use is
  // made presentable again, so the provider serves it from the same grant (and rotates it
  // once more) instead of revoking the grant. Checked when the provider sees the request,
  // i.e. after any `before` fault.
  const reuseWithinInterval = () => {
    if (!presentedRefresh || runtime.reuseInterval <= 0) return;
    const firstUse = consumedRefreshTokens.get(presentedRefresh);
    if (firstUse === undefined || Date.now() - firstUse >= runtime.reuseInterval * 1000) return;
    const entry = liveEntry(`RefreshToken:${params.refresh_token}`);
    if (!entry || !entry.payload.consumed) return;
    delete entry.payload.consumed;
    req.latchkeyReuseWithinInterval = true;
  };

  if (fault && fault.when === 'before') {
    counters.faults_applied += 1;
    if (fault.kind === 'drop') {
      req.socket.destroy();
      return undefined;
    }
    if (fault.kind === 'status') {
      faultResponse(res, fault, (text) => res.end(text));
      return undefined;
    }
    // delay: the provider sees the request only if the client is still there afterwards.
    const stillThere = await sleepUnlessClosed(fault.delay_ms, res);
    if (!stillThere) return undefined;
  }

  reuseWithinInterval();
  const originalEnd = res.end;
  res.end = function interceptedEnd(chunk, encoding, callback) {
    res.end = originalEnd;
    const end = (...args) => originalEnd.apply(res, args);
    count(endpoint, grantType, presentedRefresh, req, res.statusCode, chunk);

    if (!fault || fault.when !== 'after') return end(chunk, encoding, callback);

    counters.faults_applied += 1;
    if (fault.kind === 'drop') {
      res.socket?.destroy();
      return res;
    }
    if (fault.kind === 'status') {
      faultResponse(res, fault, (text) => end(text));
      return res;
    }
    setTimeout(() => {
      if (!res.destroyed && !res.socket?.destroyed) end(chunk, encoding, callback);
    }, fault.delay_ms);
    return res;
  };

  return providerCallback(req, res);
}

function count(endpoint, grantType, presentedRefresh, req, status, chunk) {
  if (endpoint === 'token') {
    if (status === 200) {
      if (grantType === 'refresh_token') {
        counters.refresh_grants += 1;
        if (req.latchkeyReuseWithinInterval) counters.reuse_within_interval += 1;
        if (presentedRefresh && !consumedRefreshTokens.has(presentedRefresh)) {
          consumedRefreshTokens.set(presentedRefresh, Date.now());
        }
      } else if (grantType === 'authorization_code') {
        counters.code_grants += 1;
      }
      return;
    }
    let code = 'unknown';
    try {
      const parsed = JSON.parse(Buffer.isBuffer(chunk) ? chunk.toString('utf8') : String(chunk));
      if (typeof parsed.error === 'string') code = parsed.error;
    } catch {
      // not JSON
    }
    counters.token_errors[code] = (counters.token_errors[code] ?? 0) + 1;
    if (grantType === 'refresh_token'
      && ((presentedRefresh && consumedRefreshTokens.has(presentedRefresh)) || req.latchkeyReuseSignal)) {
      counters.reuse_detections += 1;
    }
    return;
  }
  if (status >= 200 && status < 300) {
    if (endpoint === 'revocation') counters.revocations += 1;
    if (endpoint === 'userinfo') counters.userinfo += 1;
  }
}

// ---------------------------------------------------------------------------------------------
// Admin API (loopback only, like the whole server)

async function admin(provider, req, res, pathname) {
  const sub = pathname.replace(/^\/__admin\/?/, '').replace(/\/$/, '');
  const method = req.method;
  let input = {};
  if (method === 'POST' || method === 'PUT') {
    const raw = (await readBody(req)).toString('utf8').trim();
    if (raw) {
      try {
        input = JSON.parse(raw);
      } catch {
        return sendJson(res, 400, { error: 'invalid_json' });
      }
    }
  }

  if (sub === '' && method === 'GET') {
    return sendJson(res, 200, { endpoints: ['counters', 'reset', 'faults', 'config', 'revoke-grants'] });
  }
  if (sub === 'counters' && method === 'GET') {
    return sendJson(res, 200, counters);
  }
  if (sub === 'reset' && method === 'POST') {
    counters = zeroCounters();
    return sendJson(res, 200, counters);
  }
  if (sub === 'faults') {
    if (method === 'GET') return sendJson(res, 200, faults);
    if (method === 'DELETE') {
      faults = [];
      return sendJson(res, 200, faults);
    }
    if (method === 'POST') {
      const list = Array.isArray(input) ? input : [input];
      let validated;
      try {
        validated = list.map(validateFault);
      } catch (err) {
        return sendJson(res, 400, { error: 'invalid_fault', error_description: err.message });
      }
      faults.push(...validated);
      return sendJson(res, 200, faults);
    }
  }
  if (sub === 'config') {
    if (method === 'POST') {
      const map = {
        access_token_ttl: 'accessTokenTtl',
        id_token_ttl: 'idTokenTtl',
        refresh_token_ttl: 'refreshTokenTtl',
        reuse_interval: 'reuseInterval',
      };
      // The lifetimes must be >= 1; the reuse interval may be 0 (off).
      const minimum = { reuse_interval: 0 };
      for (const [name, value] of Object.entries(input)) {
        if (!map[name]) return sendJson(res, 400, { error: 'invalid_config', error_description: `unknown key ${name}` });
        const min = minimum[name] ?? 1;
        if (!Number.isInteger(value) || value < min) {
          return sendJson(res, 400, { error: 'invalid_config', error_description: `${name} must be an integer >= ${min}` });
        }
      }
      for (const [name, value] of Object.entries(input)) runtime[map[name]] = value;
    }
    if (method === 'POST' || method === 'GET') {
      return sendJson(res, 200, {
        access_token_ttl: runtime.accessTokenTtl,
        id_token_ttl: runtime.idTokenTtl,
        refresh_token_ttl: runtime.refreshTokenTtl,
        reuse_interval: runtime.reuseInterval,
        clock_tolerance: options.clockTolerance,
      });
    }
  }
  if (sub === 'delete-access-token' && method === 'POST') {
    // Deletes one opaque access token (its value is its id) and nothing else: the grant
    // and its refresh token live on, as when a provider drops a token at rotation.
    const key = `AccessToken:${String(input.token ?? '')}`;
    const deleted = store.has(key);
    removeKey(key);
    return sendJson(res, 200, { deleted });
  }
  if (sub === 'revoke-grants' && method === 'POST') {
    // Revokes every grant (optionally of one account): all their tokens die, as an admin
    // revocation at a real provider would do. Useful to provoke a genuine invalid_grant.
    const account = input.account;
    let revoked = 0;
    for (const [key, entry] of [...store]) {
      if (!key.startsWith('Grant:')) continue;
      if (account !== undefined && entry.payload.accountId !== account) continue;
      const grantId = key.slice('Grant:'.length);
      await new MemoryAdapter('Grant').revokeByGrantId(grantId);
      removeKey(key);
      revoked += 1;
    }
    return sendJson(res, 200, { revoked });
  }
  return sendJson(res, 404, { error: 'not_found' });
}
