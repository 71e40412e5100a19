import { ClaudeCodeOptions, Endpoints, OtlpProtocol } from './types';

/** Where Claude Code reads an organisation's managed settings (cannot be overridden by users). */
export const MANAGED_SETTINGS_PATHS = [
  { os: 'macOS', path: '/Library/Application Support/ClaudeCode/managed-settings.json' },
  { os: 'Linux and WSL', path: '/etc/claude-code/managed-settings.json' },
  { os: 'Windows', path: 'C:\\ProgramData\\ClaudeCode\\managed-settings.json' },
];

export const DEFAULT_PROTOCOL: OtlpProtocol = 'http/protobuf';
const DEFAULT_PORTS: Record<'grpc' | 'http', number> = { grpc: 4317, http: 4318 };

const LOOPBACK = /^(127\.|\[?::1\]?|localhost)/;

function listenerPort(address: string | undefined, fallback: number): number {
  const port = address ? Number(address.slice(address.lastIndexOf(':') + 1)) : NaN;
  return Number.isInteger(port) && port > 0 ? port : fallback;
}

/**
 * The endpoint Claude Code should send to: the one configured on the datasource, else this
 * Grafana's host with the listener's port for the chosen protocol.
 */
export function otlpEndpoint(
  options: ClaudeCodeOptions,
  endpoints: Endpoints | undefined,
  grafanaHost: string
): string {
  if (options.otlpEndpoint?.trim()) {
    return options.otlpEndpoint.trim().replace(/\/+$/, '');
  }
  const kind = (options.otlpProtocol ?? DEFAULT_PROTOCOL) === 'grpc' ? 'grpc' : 'http';
  const port = listenerPort(endpoints?.[kind]?.address, DEFAULT_PORTS[kind]);
  const host = grafanaHost.includes(':') && !grafanaHost.startsWith('[') ? `[${grafanaHost}]` : grafanaHost;
  return `${endpoints?.tls ? 'https' : 'http'}://${host}:${port}`;
}

/** Listener problems worth telling the person configuring Claude Code about. */
export function endpointWarnings(options: ClaudeCodeOptions, endpoints: Endpoints | undefined): string[] {
  if (!endpoints) {
    return [];
  }
  const kind = (options.otlpProtocol ?? DEFAULT_PROTOCOL) === 'grpc' ? 'grpc' : 'http';
  const listener = endpoints[kind];
  const name = kind === 'grpc' ? 'OTLP/gRPC' : 'OTLP/HTTP';
  if (listener.state === 'failed') {
    return [`The ${name} listener on ${listener.address} failed: ${listener.error}`];
  }
  if (listener.state === 'starting') {
    return [`The ${name} listener is still starting.`];
  }
  if (endpoints.tls && endpoints.tls.certificate_days_left < 0) {
    return [
      `The listeners' TLS certificate (${endpoints.tls.certificate_subject}) has expired: Claude Code refuses it.`,
    ];
  }
  if (listener.address && LOOPBACK.test(listener.address) && !options.otlpEndpoint) {
    return [
      `The ${name} listener is on ${listener.address}, reachable only from the Grafana host. ` +
        `To receive from developer machines set otlp_${kind}_listen in grafana.ini (behind TLS), ` +
        'or send through a reverse proxy and enter its URL as the public OTLP endpoint.',
    ];
  }
  return [];
}

/**
 * Where each developer machine keeps the files TLS needs: the CA that signed the listeners'
 * certificate, and for mTLS its own certificate and key.
 */
export const TLS_FILES = {
  ca: '/etc/claude-code/otlp-ca.pem',
  cert: '/etc/claude-code/otlp-client.pem',
  key: '/etc/claude-code/otlp-client-key.pem',
};

/**
 * The TLS variables: the OpenTelemetry ones, which Claude Code's gRPC exporter follows, and the
 * CLI's own fetch settings, which its OTLP/HTTP exporter follows instead (observed with 2.1.197
 * and 2.1.332).
 */
function tlsEnv(tls: NonNullable<Endpoints['tls']>): Array<[string, string]> {
  const env: Array<[string, string]> = [
    ['OTEL_EXPORTER_OTLP_CERTIFICATE', TLS_FILES.ca],
    ['NODE_EXTRA_CA_CERTS', TLS_FILES.ca],
  ];
  if (tls.client_certificates === 'required') {
    env.push(
      ['OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE', TLS_FILES.cert],
      ['OTEL_EXPORTER_OTLP_CLIENT_KEY', TLS_FILES.key],
      ['CLAUDE_CODE_CLIENT_CERT', TLS_FILES.cert],
      ['CLAUDE_CODE_CLIENT_KEY', TLS_FILES.key]
    );
  }
  return env;
}

/** The environment Claude Code needs, in a stable order. */
export function claudeCodeEnv(
  options: ClaudeCodeOptions,
  endpoint: string,
  hasToken: boolean,
  tls?: Endpoints['tls']
): Array<[string, string]> {
  const env: Array<[string, string]> = [
    ['CLAUDE_CODE_ENABLE_TELEMETRY', '1'],
    ['OTEL_METRICS_EXPORTER', 'otlp'],
    ['OTEL_LOGS_EXPORTER', 'otlp'],
    ['OTEL_EXPORTER_OTLP_PROTOCOL', options.otlpProtocol ?? DEFAULT_PROTOCOL],
    ['OTEL_EXPORTER_OTLP_ENDPOINT', endpoint],
  ];
  if (tls) {
    env.push(...tlsEnv(tls));
  }
  if (hasToken) {
    // the token itself is a secret Grafana never sends back to the browser
    env.push(['OTEL_EXPORTER_OTLP_HEADERS', 'Authorization=Bearer <ingest token>']);
  }
  if (options.logUserPrompts) {
    env.push(['OTEL_LOG_USER_PROMPTS', '1']);
  }
  if (options.logToolDetails) {
    env.push(['OTEL_LOG_TOOL_DETAILS', '1']);
  }
  if (options.enableTraces) {
    env.push(['OTEL_TRACES_EXPORTER', 'otlp'], ['CLAUDE_CODE_ENHANCED_TELEMETRY_BETA', '1']);
  }
  if (options.includeRepository) {
    // Claude Code 2.1.332 and later: the git repository on every metric, event and span
    env.push(['OTEL_METRICS_INCLUDE_REPOSITORY', '1']);
  }
  if (options.resourceAttributes?.trim()) {
    env.push(['OTEL_RESOURCE_ATTRIBUTES', options.resourceAttributes.trim()]);
  }
  return env;
}

/** Quotes a value for POSIX shells when it needs it. */
function shellQuote(value: string): string {
  return /^[A-Za-z0-9_./:@,=+-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

export function shellExports(env: Array<[string, string]>): string {
  return env.map(([k, v]) => `export ${k}=${shellQuote(v)}`).join('\n');
}

/** The `env` block for `~/.claude/settings.json` or managed-settings.json. */
export function settingsJson(env: Array<[string, string]>): string {
  return JSON.stringify({ env: Object.fromEntries(env) }, null, 2);
}
