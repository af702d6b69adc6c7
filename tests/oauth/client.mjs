// The black-box tests' OAuth 2.0 client: a long-running driver of
// openid-client (panva; pinned in package.json) for
// tests/support/oauth_client.rs. It is set up by tests/oauth/setup, which
// installs it with its node_modules into <target dir>/oauth-client.
//
// Protocol: one JSON command per line on stdin, one JSON answer per line on
// stdout, in order: {"ok": <result>} or {"error": {name, message, code, status,
// error, error_description, body, cause}}. A command's "id", if any, is echoed
// in its answer. Nothing else is written to stdout (logs go to stderr). The
// driver keeps its state between commands (the Configuration, the last PKCE
// verifier, state, redirect_uri, tokens, device authorization) and exits on
// {"op":"quit"} or at the end of stdin. A command that throws is answered as
// an error; the loop goes on.
//
// Everything OAuth is done by the library; the driver only adapts (see
// "discover" and "exchange" for the two places where it has to).

import * as client from 'openid-client';
import * as readline from 'node:readline';

// Whatever the library or anything else logs must not reach stdout.
console.log = console.error;
console.info = console.error;
console.debug = console.error;
process.on('unhandledRejection', (reason) => {
  log('unhandled rejection:', reason);
});

function log(...args) {
  console.error('[oauth client]', ...args);
}

const state = {
  // The server's base URL without trailing slash, its issuer URL (`{base}/`)
  // and the metadata from /_matrix/client/v1/auth_metadata.
  base: null,
  issuer: null,
  metadata: null,
  // The client: an openid-client Configuration.
  config: null,
  // From the last authorization_url.
  codeVerifier: null,
  state: null,
  redirectUri: null,
  // From the last token response (merged: a refresh without a new refresh
  // token keeps the old one).
  tokens: null,
  // The last device authorization response.
  device: null,
  // The last HTTP exchange the library made.
  lastHttp: null,
};

// The library's fetch, recording each exchange for "last_http" (the library
// normalises what it returns, e.g. token_type is lowercased; a test that wants
// the server's exact bytes or headers reads them here).
async function recordingFetch(url, options) {
  const response = await fetch(url, options);
  const record = {
    method: options?.method ?? 'GET',
    url: String(url),
    request_body: typeof options?.body === 'string' ? options.body : options?.body?.toString() ?? null,
    status: response.status,
    headers: Object.fromEntries(response.headers.entries()),
    body: null,
  };
  state.lastHttp = record;
  try {
    record.body = await response.clone().text();
  } catch (err) {
    record.body = null;
  }
  return response;
}

function execute() {
  // {base} is plain http://127.0.0.1:PORT.
  return [client.allowInsecureRequests];
}

function prepare(config) {
  client.allowInsecureRequests(config);
  config[client.customFetch] = recordingFetch;
  return config;
}

function need(value, what) {
  if (value === null || value === undefined) {
    throw new Error(`no ${what} yet`);
  }
  return value;
}

function plain(value) {
  // The library's results carry helper methods and symbol keys; JSON keeps the
  // data.
  return value === undefined ? {} : JSON.parse(JSON.stringify(value));
}

function canonical(value) {
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, canonical(value[k])]),
    );
  }
  return value;
}

function sameJson(a, b) {
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

function tokensAnswer(result) {
  const tokens = plain(result);
  state.tokens = {
    ...(state.tokens ?? {}),
    ...tokens,
    refresh_token: tokens.refresh_token ?? state.tokens?.refresh_token,
  };
  return tokens;
}

const ops = {
  // openid-client's discovery takes an issuer and fetches
  // /.well-known/oauth-authorization-server (algorithm 'oauth2', RFC 8414),
  // checking that the document's issuer is that issuer. It cannot discover
  // from /_matrix/client/v1/auth_metadata: a URL without "/.well-known/" is
  // taken as an issuer (and turned into
  // /.well-known/oauth-authorization-server/_matrix/client/v1/auth_metadata),
  // and one with it is fetched without any issuer check. So: the library
  // discovers through the well-known document (validating the issuer), the
  // driver fetches auth_metadata and requires it to be the same document, and
  // the Configurations of use_client are built from auth_metadata, the
  // document a Matrix client uses.
  async discover(cmd) {
    if (typeof cmd.base !== 'string') throw new TypeError('"base" must be a string');
    const base = cmd.base.replace(/\/+$/, '');
    const issuer = new URL(`${base}/`);
    const discovered = await client.discovery(issuer, 'discovery-only', undefined, client.None(), {
      algorithm: 'oauth2',
      execute: execute(),
      [client.customFetch]: recordingFetch,
    });
    const wellKnown = plain(discovered.serverMetadata());

    const url = `${base}/_matrix/client/v1/auth_metadata`;
    const response = await recordingFetch(url, { headers: { accept: 'application/json' }, redirect: 'manual' });
    const text = await response.text();
    let metadata;
    try {
      metadata = JSON.parse(text);
    } catch {
      metadata = undefined;
    }
    if (response.status !== 200 || !metadata || typeof metadata !== 'object' || Array.isArray(metadata)) {
      throw Object.assign(new Error(`GET ${url}: status ${response.status}, not a JSON object`), {
        name: 'AuthMetadataError',
        status: response.status,
        body: metadata ?? text,
      });
    }
    if (!sameJson(metadata, wellKnown)) {
      throw Object.assign(
        new Error('/_matrix/client/v1/auth_metadata differs from /.well-known/oauth-authorization-server'),
        { name: 'MetadataMismatch', body: { auth_metadata: metadata, well_known: wellKnown } },
      );
    }
    Object.assign(state, {
      base,
      issuer: issuer.href,
      metadata,
      config: null,
      codeVerifier: null,
      state: null,
      redirectUri: null,
      tokens: null,
      device: null,
    });
    return { metadata, well_known: wellKnown };
  },

  // RFC 7591 through the library. Its dynamicClientRegistration has no way to
  // take metadata already discovered: it discovers again (well-known, issuer
  // checked), then POSTs to registration_endpoint.
  async register(cmd) {
    const issuer = need(state.issuer, 'discovery (op "discover")');
    const metadata = { token_endpoint_auth_method: 'none', ...(cmd.metadata ?? {}) };
    const config = await client.dynamicClientRegistration(new URL(issuer), metadata, client.None(), {
      algorithm: 'oauth2',
      execute: execute(),
      [client.customFetch]: recordingFetch,
    });
    state.config = prepare(config);
    return plain(config.clientMetadata());
  },

  async use_client(cmd) {
    const metadata = need(state.metadata, 'discovery (op "discover")');
    if (typeof cmd.client_id !== 'string') throw new TypeError('"client_id" must be a string');
    state.config = prepare(
      new client.Configuration(metadata, cmd.client_id, { token_endpoint_auth_method: 'none' }, client.None()),
    );
    return plain(state.config.clientMetadata());
  },

  // "code_challenge_method": absent or "S256": PKCE S256; null: no PKCE at
  // all; "plain": the verifier as challenge; anything else is sent as it is
  // with an S256 challenge. "extra": more parameters, set last (a null value
  // removes a parameter, e.g. {"state": null}).
  async authorization_url(cmd) {
    const config = need(state.config, 'client (op "register" or "use_client")');
    const method = 'code_challenge_method' in cmd ? cmd.code_challenge_method : 'S256';
    const params = new URLSearchParams();
    params.set('redirect_uri', cmd.redirect_uri);
    if (cmd.scope !== null && cmd.scope !== undefined) params.set('scope', cmd.scope);
    const st = client.randomState();
    params.set('state', st);
    let verifier = null;
    let challenge = null;
    if (method !== null && method !== undefined) {
      verifier = client.randomPKCECodeVerifier();
      challenge = method === 'plain' ? verifier : await client.calculatePKCECodeChallenge(verifier);
      params.set('code_challenge', challenge);
      params.set('code_challenge_method', method);
    }
    if (cmd.prompt !== null && cmd.prompt !== undefined) params.set('prompt', cmd.prompt);
    if (cmd.response_mode !== null && cmd.response_mode !== undefined) {
      params.set('response_mode', cmd.response_mode);
    }
    for (const [k, v] of Object.entries(cmd.extra ?? {})) {
      if (v === null) params.delete(k);
      else params.set(k, String(v));
    }
    const url = client.buildAuthorizationUrl(config, params);
    state.codeVerifier = verifier;
    state.state = params.get('state');
    state.redirectUri = params.get('redirect_uri');
    return { url: url.href, state: state.state, code_verifier: verifier, code_challenge: challenge };
  },

  // "code_verifier": absent: the remembered one; null: none sent; a string:
  // that. "expected_state": absent: the remembered one; null: no state check;
  // a string: that. "extra": more token request parameters.
  async exchange(cmd) {
    const config = need(state.config, 'client (op "register" or "use_client")');
    const callback = new URL(cmd.callback_url);
    // authorizationCodeGrant(config, URL) reads the response parameters from
    // the URL's query only (oauth4webapi's validateAuthResponse on
    // url.searchParams): with response_mode=fragment they are in the fragment,
    // so they are moved into the query here. The library then sends as
    // redirect_uri the callback URL without query and fragment.
    if (callback.hash.length > 1) {
      for (const [k, v] of new URLSearchParams(callback.hash.slice(1))) {
        callback.searchParams.append(k, v);
      }
      callback.hash = '';
    }
    const verifier = 'code_verifier' in cmd ? cmd.code_verifier : state.codeVerifier;
    let expectedState = 'expected_state' in cmd ? cmd.expected_state : state.state;
    if (expectedState === null) expectedState = client.skipStateCheck;
    const checks = { expectedState };
    if (verifier !== null && verifier !== undefined) checks.pkceCodeVerifier = verifier;
    const extra = cmd.extra ? new URLSearchParams(cmd.extra) : undefined;
    const result = await client.authorizationCodeGrant(config, callback, checks, extra);
    return tokensAnswer(result);
  },

  async refresh(cmd) {
    const config = need(state.config, 'client (op "register" or "use_client")');
    const token = cmd.refresh_token ?? need(state.tokens?.refresh_token, 'refresh token');
    const result = await client.refreshTokenGrant(config, token, cmd.extra ?? undefined);
    return tokensAnswer(result);
  },

  async revoke(cmd) {
    const config = need(state.config, 'client (op "register" or "use_client")');
    const params = {};
    if (cmd.token_type_hint !== null && cmd.token_type_hint !== undefined) {
      params.token_type_hint = cmd.token_type_hint;
    }
    await client.tokenRevocation(config, cmd.token, params);
    return {};
  },

  async device_start(cmd) {
    const config = need(state.config, 'client (op "register" or "use_client")');
    const params = { ...(cmd.extra ?? {}) };
    if (cmd.scope !== null && cmd.scope !== undefined) params.scope = cmd.scope;
    const response = await client.initiateDeviceAuthorization(config, params);
    state.device = response;
    return plain(response);
  },

  // The library's polling loop: waits `interval` (default 5 s) before each
  // request, +5 s after slow_down, until tokens, an error other than
  // authorization_pending/slow_down, or the timeout (error code OAUTH_TIMEOUT).
  async device_poll(cmd) {
    const config = need(state.config, 'client (op "register" or "use_client")');
    const device = need(state.device, 'device authorization (op "device_start")');
    const timeout = Number(cmd.timeout_ms ?? 30000);
    const result = await client.pollDeviceAuthorizationGrant(config, device, undefined, {
      signal: AbortSignal.timeout(timeout),
    });
    return tokensAnswer(result);
  },

  // One device-code token request, no polling: authorization_pending and
  // slow_down come back as errors. The library's generic grant request with
  // the device_code grant type (what its poll loop sends, processed the same).
  async device_poll_once(cmd) {
    const config = need(state.config, 'client (op "register" or "use_client")');
    const deviceCode = cmd.device_code ?? need(state.device, 'device authorization (op "device_start")').device_code;
    const result = await client.genericGrantRequest(config, 'urn:ietf:params:oauth:grant-type:device_code', {
      device_code: deviceCode,
    });
    return tokensAnswer(result);
  },

  // The driver's memory: tokens, device response, PKCE, state.
  async state() {
    return plain({
      base: state.base,
      issuer: state.issuer,
      client_id: state.config ? state.config.clientMetadata().client_id : null,
      code_verifier: state.codeVerifier,
      state: state.state,
      redirect_uri: state.redirectUri,
      tokens: state.tokens,
      device: state.device,
    });
  },

  // The last HTTP request the library (or discover) made and the server's
  // answer: method, url, request_body, status, headers, body (text).
  async last_http() {
    return need(state.lastHttp, 'HTTP exchange');
  },
};

// --- errors ---------------------------------------------------------------

function isResponse(value) {
  return value instanceof Response;
}

async function readBody(response) {
  try {
    if (response.bodyUsed) return undefined;
    const text = await response.text();
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  } catch {
    return undefined;
  }
}

function causes(err) {
  const chain = [];
  let c = err?.cause;
  for (let i = 0; c && i < 8; i++) {
    chain.push(c);
    c = c?.cause;
  }
  return chain;
}

async function describe(err) {
  const out = {
    name: err?.name ?? typeof err,
    message: String(err?.message ?? err),
    code: err?.code ?? null,
    status: null,
    error: null,
    error_description: null,
    body: null,
    cause: null,
  };
  if (err instanceof client.ResponseBodyError) {
    // A 4xx with a JSON body holding "error": the OAuth error response.
    out.status = err.status;
    out.error = err.error;
    out.error_description = err.error_description ?? null;
    out.body = err.cause ?? null;
  } else if (err instanceof client.AuthorizationResponseError) {
    // "error" in the authorization response (the callback URL).
    out.error = err.error;
    out.error_description = err.error_description ?? null;
    out.body = Object.fromEntries(err.cause);
  } else if (err instanceof client.WWWAuthenticateChallengeError) {
    // A non-success answer with a WWW-Authenticate header: the library throws
    // this before looking at the body.
    out.status = err.status;
    const body = await readBody(err.response);
    out.body = { challenges: err.cause, body: body ?? null };
    const params = err.cause?.[0]?.parameters ?? {};
    out.error = (body && typeof body === 'object' && body.error) || params.error || null;
    out.error_description =
      (body && typeof body === 'object' && body.error_description) || params.error_description || null;
  } else {
    // Anything else: a library ClientError (e.g. code
    // OAUTH_RESPONSE_IS_NOT_CONFORM for an unexpected status, with the
    // Response as its cause), a TypeError (bad input, or fetch failing), the
    // driver's own errors.
    if (typeof err?.status === 'number') out.status = err.status;
    if (err?.body !== undefined) out.body = err.body;
    for (const c of [err, ...causes(err)]) {
      if (isResponse(c)) {
        out.status ??= c.status;
        if (out.body === null) out.body = (await readBody(c)) ?? null;
        break;
      }
      if (c && typeof c === 'object' && 'body' in c && out.body === null && !isResponse(c.body)) {
        out.body = c.body ?? null;
      }
    }
    if (out.body && typeof out.body === 'object' && typeof out.body.error === 'string') {
      out.error = out.body.error;
      out.error_description = out.body.error_description ?? null;
    }
  }
  const chain = causes(err)
    .filter((c) => c instanceof Error)
    .map((c) => `${c.name}: ${c.message}${c.code ? ` (${c.code})` : ''}`);
  out.cause = chain.length ? chain.join('; ') : null;
  return out;
}

// --- the loop ---------------------------------------------------------------

function answer(value) {
  process.stdout.write(JSON.stringify(value) + '\n');
}

const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false });
for await (const line of lines) {
  if (!line.trim()) continue;
  let cmd;
  let id;
  try {
    cmd = JSON.parse(line);
    id = cmd?.id;
    if (!cmd || typeof cmd !== 'object' || typeof cmd.op !== 'string') {
      throw new TypeError('a command is a JSON object with a string "op"');
    }
    log('>', cmd.op);
    if (cmd.op === 'quit') {
      answer({ ok: {}, ...(id !== undefined && { id }) });
      break;
    }
    const op = Object.hasOwn(ops, cmd.op) ? ops[cmd.op] : null;
    if (!op) throw new TypeError(`unknown op ${JSON.stringify(cmd.op)}`);
    const ok = await op(cmd);
    answer({ ok: ok ?? {}, ...(id !== undefined && { id }) });
  } catch (err) {
    let error;
    try {
      error = await describe(err);
    } catch (inner) {
      error = { name: 'Error', message: `${err}; describing it failed: ${inner}`, code: null, status: null };
    }
    log('<', cmd?.op ?? '?', 'error:', JSON.stringify(error));
    if (err?.stack) log(err.stack);
    answer({ error, ...(id !== undefined && { id }) });
  }
}
process.exit(0);
