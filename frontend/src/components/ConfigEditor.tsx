import React, { ChangeEvent, useEffect, useState } from 'react';
import { DataSourcePluginOptionsEditorProps } from '@grafana/data';
import { getBackendSrv } from '@grafana/runtime';
import {
  Alert,
  ClipboardButton,
  Field,
  FieldSet,
  Input,
  RadioButtonGroup,
  SecretInput,
  Stack,
  Switch,
  Text,
} from '@grafana/ui';

import {
  claudeCodeEnv,
  DEFAULT_PROTOCOL,
  endpointWarnings,
  MANAGED_SETTINGS_PATHS,
  otlpEndpoint,
  settingsJson,
  shellExports,
  TLS_FILES,
} from '../claudeCodeConfig';
import { ClaudeCodeOptions, ClaudeCodeSecureOptions, ContentRole, Endpoints, OtlpProtocol } from '../types';

type Props = DataSourcePluginOptionsEditorProps<ClaudeCodeOptions, ClaudeCodeSecureOptions>;

const CONTENT_ROLES: Array<{ value: ContentRole; label: string }> = [
  { value: 'Viewer', label: 'Viewers' },
  { value: 'Editor', label: 'Editors' },
  { value: 'Admin', label: 'Admins' },
];

const PROTOCOLS: Array<{ value: OtlpProtocol; label: string }> = [
  { value: 'http/protobuf', label: 'HTTP/protobuf' },
  { value: 'grpc', label: 'gRPC' },
  { value: 'http/json', label: 'HTTP/JSON' },
];

/** Optional Claude Code telemetry, each a switch that adds its env var to the configuration. */
const SWITCHES: Array<{
  key: 'logUserPrompts' | 'logToolDetails' | 'enableTraces' | 'includeRepository';
  label: string;
  id: string;
}> = [
  { key: 'logUserPrompts', label: 'Log prompt text', id: 'cc-log-prompts' },
  { key: 'logToolDetails', label: 'Log tool parameters', id: 'cc-log-tools' },
  { key: 'enableTraces', label: 'Traces (beta)', id: 'cc-traces' },
  // Claude Code 2.1.332+: cost, commits and lines per repository and branch
  { key: 'includeRepository', label: 'Include repository', id: 'cc-repository' },
];

function Snippet({ title, text, testId }: { title: string; text: string; testId: string }) {
  return (
    <Stack direction="column" gap={0.5}>
      <Stack justifyContent="space-between" alignItems="center">
        <Text weight="medium">{title}</Text>
        <ClipboardButton icon="copy" variant="secondary" size="sm" getText={() => text}>
          Copy
        </ClipboardButton>
      </Stack>
      <pre data-testid={testId} style={{ margin: 0, whiteSpace: 'pre-wrap', userSelect: 'all' }}>
        {text}
      </pre>
    </Stack>
  );
}

export function ConfigEditor({ options, onOptionsChange }: Props) {
  const { jsonData, secureJsonFields, secureJsonData } = options;
  const [endpoints, setEndpoints] = useState<Endpoints | undefined>();

  // the listener addresses come from the running backend (grafana.ini settings); a datasource
  // that is not saved yet has no uid and falls back to the default ports
  useEffect(() => {
    if (!options.uid) {
      return;
    }
    let live = true;
    getBackendSrv()
      .get<Endpoints>(`/api/datasources/uid/${options.uid}/resources/endpoints`, undefined, undefined, {
        showErrorAlert: false,
      })
      .then((e) => live && setEndpoints(e))
      .catch(() => undefined);
    return () => {
      live = false;
    };
  }, [options.uid]);

  const setJson = (patch: Partial<ClaudeCodeOptions>) =>
    onOptionsChange({ ...options, jsonData: { ...jsonData, ...patch } });

  const hasToken = Boolean(secureJsonFields?.ingestToken || secureJsonData?.ingestToken);
  const endpoint = otlpEndpoint(jsonData, endpoints, window.location.hostname || 'localhost');
  const env = claudeCodeEnv(jsonData, endpoint, hasToken, endpoints?.tls);
  const warnings = endpointWarnings(jsonData, endpoints);

  return (
    <>
      <FieldSet label="Ingest">
        <Field
          label="Ingest token"
          htmlFor="cc-ingest-token"
          description="When set, Claude Code must send it as Authorization: Bearer <token> to the OTLP listeners. Stored encrypted; never sent back to the browser."
        >
          <SecretInput
            id="cc-ingest-token"
            width={50}
            isConfigured={Boolean(secureJsonFields?.ingestToken)}
            value={secureJsonData?.ingestToken ?? ''}
            placeholder="a long random string"
            onChange={(e: ChangeEvent<HTMLInputElement>) =>
              onOptionsChange({ ...options, secureJsonData: { ...secureJsonData, ingestToken: e.currentTarget.value } })
            }
            onReset={() =>
              onOptionsChange({
                ...options,
                secureJsonFields: { ...secureJsonFields, ingestToken: false },
                secureJsonData: { ...secureJsonData, ingestToken: '' },
              })
            }
          />
        </Field>
        <Field
          label="Retention (days)"
          htmlFor="cc-retention"
          description="Delete telemetry older than this many days. Empty or 0 keeps everything."
        >
          <Input
            id="cc-retention"
            type="number"
            min={0}
            width={12}
            value={jsonData.retentionDays ?? ''}
            onChange={(e: ChangeEvent<HTMLInputElement>) => {
              const n = parseInt(e.currentTarget.value, 10);
              setJson({ retentionDays: Number.isFinite(n) && n > 0 ? n : undefined });
            }}
          />
        </Field>
        <Field
          label="Size limit (GB)"
          htmlFor="cc-retention-size"
          description="Delete the oldest telemetry when the data grows past this size. Empty or 0: no limit."
        >
          <Input
            id="cc-retention-size"
            type="number"
            min={0}
            step={0.1}
            width={12}
            value={jsonData.retentionMaxSizeGB ?? ''}
            onChange={(e: ChangeEvent<HTMLInputElement>) => {
              const n = parseFloat(e.currentTarget.value);
              setJson({ retentionMaxSizeGB: Number.isFinite(n) && n > 0 ? n : undefined });
            }}
          />
        </Field>
      </FieldSet>

      <FieldSet label="Content">
        <Field
          label="Content visible to"
          description="Prompts, assistant responses, tool parameters, commands, file paths, raw API bodies and error messages are shown to this role and above. Everyone else sees [hidden] in their place, with the same counts, tokens and costs, and cannot search them."
        >
          <RadioButtonGroup
            options={CONTENT_ROLES}
            value={jsonData.contentRole ?? 'Admin'}
            onChange={(contentRole) => setJson({ contentRole })}
          />
        </Field>
      </FieldSet>

      <FieldSet label="Claude Code configuration">
        <Field label="Protocol">
          <RadioButtonGroup
            options={PROTOCOLS}
            value={jsonData.otlpProtocol ?? DEFAULT_PROTOCOL}
            onChange={(otlpProtocol) => setJson({ otlpProtocol })}
          />
        </Field>
        <Field
          label="Public OTLP endpoint"
          htmlFor="cc-otlp-endpoint"
          description="The URL developer machines reach the receiver at (e.g. a TLS reverse proxy). Empty: this Grafana host with the listener's port."
        >
          <Input
            id="cc-otlp-endpoint"
            width={50}
            placeholder={otlpEndpoint(
              { ...jsonData, otlpEndpoint: undefined },
              endpoints,
              window.location.hostname || 'localhost'
            )}
            value={jsonData.otlpEndpoint ?? ''}
            onChange={(e: ChangeEvent<HTMLInputElement>) =>
              setJson({ otlpEndpoint: e.currentTarget.value || undefined })
            }
          />
        </Field>
        <Field
          label="Resource attributes"
          htmlFor="cc-resource-attributes"
          description="Your own dimensions, e.g. team=platform,cost_center=eng"
        >
          <Input
            id="cc-resource-attributes"
            width={50}
            value={jsonData.resourceAttributes ?? ''}
            onChange={(e: ChangeEvent<HTMLInputElement>) =>
              setJson({ resourceAttributes: e.currentTarget.value || undefined })
            }
          />
        </Field>
        <Stack gap={3}>
          {SWITCHES.map(({ key, label, id }) => (
            <Field key={key} label={label} htmlFor={id}>
              <Switch
                id={id}
                value={Boolean(jsonData[key])}
                onChange={(e) => setJson({ [key]: e.currentTarget.checked })}
              />
            </Field>
          ))}
        </Stack>
        {warnings.map((w) => (
          <Alert key={w} severity="warning" title="OTLP listener">
            {w}
          </Alert>
        ))}
        <Stack direction="column" gap={2}>
          <Snippet title="Shell (per user)" text={shellExports(env)} testId="cc-config-shell" />
          <Snippet title="~/.claude/settings.json (per user)" text={settingsJson(env)} testId="cc-config-settings" />
          <Stack direction="column" gap={0.5}>
            <Text color="secondary" variant="bodySmall">
              Organisation-wide: the same JSON as managed-settings.json, which users cannot override
              {': '}
              {MANAGED_SETTINGS_PATHS.map((p) => `${p.os}: ${p.path}`).join('; ')}.
            </Text>
            {endpoints?.tls && (
              <Text color="secondary" variant="bodySmall">
                The listeners speak TLS ({endpoints.tls.certificate_subject}, valid{' '}
                {endpoints.tls.certificate_days_left} more days): put the CA that signed it at {TLS_FILES.ca}
                {endpoints.tls.client_certificates === 'required'
                  ? `, and each machine's client certificate and key (signed by the client CA) at ${TLS_FILES.cert} and ${TLS_FILES.key}`
                  : ''}
                .
              </Text>
            )}
          </Stack>
        </Stack>
      </FieldSet>
    </>
  );
}
