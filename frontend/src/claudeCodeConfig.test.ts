import { claudeCodeEnv, endpointWarnings, otlpEndpoint, settingsJson, shellExports } from './claudeCodeConfig';

const listening = {
  grpc: { state: 'listening' as const, address: '0.0.0.0:14317' },
  http: { state: 'listening' as const, address: '0.0.0.0:14318' },
};

describe('otlpEndpoint', () => {
  it('uses this Grafana host and the port of the listener for the protocol', () => {
    expect(otlpEndpoint({}, listening, 'grafana.example.com')).toBe('http://grafana.example.com:14318');
    expect(otlpEndpoint({ otlpProtocol: 'grpc' }, listening, 'grafana.example.com')).toBe(
      'http://grafana.example.com:14317'
    );
    expect(otlpEndpoint({ otlpProtocol: 'http/json' }, undefined, '::1')).toBe('http://[::1]:4318');
  });

  it('prefers the configured public endpoint, without a trailing slash', () => {
    expect(otlpEndpoint({ otlpEndpoint: ' https://otlp.example.com/ ' }, listening, 'g')).toBe(
      'https://otlp.example.com'
    );
  });
});

describe('endpointWarnings', () => {
  it('warns when the listener is loopback only, failed or starting', () => {
    const loopback = { ...listening, http: { state: 'listening' as const, address: '127.0.0.1:4318' } };
    expect(endpointWarnings({}, loopback)[0]).toContain('reachable only from the Grafana host');
    expect(endpointWarnings({ otlpEndpoint: 'https://proxy' }, loopback)).toEqual([]);
    const failed = { ...listening, grpc: { state: 'failed' as const, address: '0.0.0.0:4317', error: 'in use' } };
    expect(endpointWarnings({ otlpProtocol: 'grpc' }, failed)).toEqual([
      'The OTLP/gRPC listener on 0.0.0.0:4317 failed: in use',
    ]);
    expect(endpointWarnings({}, listening)).toEqual([]);
    expect(endpointWarnings({}, undefined)).toEqual([]);
  });
});

describe('claudeCodeEnv', () => {
  it('holds what Claude Code needs, and the options chosen', () => {
    const env = claudeCodeEnv(
      {
        logUserPrompts: true,
        enableTraces: true,
        includeRepository: true,
        resourceAttributes: 'team=platform,cost_center=eng',
      },
      'http://h:4318',
      true
    );
    expect(Object.fromEntries(env)).toEqual({
      CLAUDE_CODE_ENABLE_TELEMETRY: '1',
      OTEL_METRICS_EXPORTER: 'otlp',
      OTEL_LOGS_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://h:4318',
      OTEL_EXPORTER_OTLP_HEADERS: 'Authorization=Bearer <ingest token>',
      OTEL_LOG_USER_PROMPTS: '1',
      OTEL_TRACES_EXPORTER: 'otlp',
      CLAUDE_CODE_ENHANCED_TELEMETRY_BETA: '1',
      OTEL_METRICS_INCLUDE_REPOSITORY: '1',
      OTEL_RESOURCE_ATTRIBUTES: 'team=platform,cost_center=eng',
    });
  });

  it('renders shell exports (quoted where needed) and the settings.json env block', () => {
    const env = claudeCodeEnv({ otlpProtocol: 'grpc' }, 'http://h:4317', true);
    expect(shellExports(env)).toBe(
      [
        'export CLAUDE_CODE_ENABLE_TELEMETRY=1',
        'export OTEL_METRICS_EXPORTER=otlp',
        'export OTEL_LOGS_EXPORTER=otlp',
        'export OTEL_EXPORTER_OTLP_PROTOCOL=grpc',
        'export OTEL_EXPORTER_OTLP_ENDPOINT=http://h:4317',
        "export OTEL_EXPORTER_OTLP_HEADERS='Authorization=Bearer <ingest token>'",
      ].join('\n')
    );
    expect(JSON.parse(settingsJson(env))).toEqual({ env: Object.fromEntries(env) });
  });
});

describe('TLS on the listeners', () => {
  const tls = {
    client_certificates: 'not asked' as const,
    certificate_subject: 'CN=otlp.example',
    certificate_expires: '2027-03-01T00:00:00+00:00',
    certificate_days_left: 84,
  };

  it('sends to https and trusts the CA in both exporters', () => {
    expect(otlpEndpoint({}, { ...listening, tls }, 'grafana.example.com')).toBe('https://grafana.example.com:14318');
    const env = Object.fromEntries(claudeCodeEnv({}, 'https://h:4318', false, tls));
    expect(env.OTEL_EXPORTER_OTLP_CERTIFICATE).toBe('/etc/claude-code/otlp-ca.pem');
    expect(env.NODE_EXTRA_CA_CERTS).toBe('/etc/claude-code/otlp-ca.pem');
    expect(env).not.toHaveProperty('OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE');
  });

  it('adds the client certificate and key when the listeners require one (mTLS)', () => {
    const env = Object.fromEntries(
      claudeCodeEnv({}, 'https://h:4318', false, { ...tls, client_certificates: 'required' })
    );
    expect(env).toMatchObject({
      OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: '/etc/claude-code/otlp-client.pem',
      OTEL_EXPORTER_OTLP_CLIENT_KEY: '/etc/claude-code/otlp-client-key.pem',
      CLAUDE_CODE_CLIENT_CERT: '/etc/claude-code/otlp-client.pem',
      CLAUDE_CODE_CLIENT_KEY: '/etc/claude-code/otlp-client-key.pem',
    });
  });

  it('warns when the certificate has expired', () => {
    const expired = { ...listening, tls: { ...tls, certificate_days_left: -2 } };
    expect(endpointWarnings({}, expired)[0]).toContain('has expired');
  });
});
