import React from 'react';
import { DataSourceSettings } from '@grafana/data';
import { act, render, screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';

import { ClaudeCodeOptions, ClaudeCodeSecureOptions, Endpoints } from '../types';
import { ConfigEditor } from './ConfigEditor';

const backendGet = jest.fn();
jest.mock('@grafana/runtime', () => ({
  ...jest.requireActual('@grafana/runtime'),
  getBackendSrv: () => ({ get: backendGet }),
}));

type Settings = DataSourceSettings<ClaudeCodeOptions, ClaudeCodeSecureOptions>;

function settings(patch: Partial<Settings> = {}): Settings {
  return {
    id: 1,
    uid: 'claude-code',
    orgId: 1,
    name: 'Claude Code',
    type: 'vibe-claudecode-datasource',
    typeName: 'Claude Code',
    typeLogoUrl: '',
    access: 'proxy',
    url: '',
    user: '',
    database: '',
    basicAuth: false,
    basicAuthUser: '',
    isDefault: false,
    withCredentials: false,
    readOnly: false,
    jsonData: {},
    secureJsonFields: {},
    ...patch,
  } as Settings;
}

const endpoints: Endpoints = {
  grpc: { state: 'listening', address: '0.0.0.0:4317' },
  http: { state: 'listening', address: '0.0.0.0:4318' },
};

/** Renders and lets the endpoints request settle, as the page does before anyone types. */
async function renderEditor(element: React.ReactElement) {
  const view = render(element);
  await act(() => Promise.resolve());
  return view;
}

beforeEach(() => {
  backendGet.mockReset();
  backendGet.mockResolvedValue(endpoints);
});

describe('ConfigEditor', () => {
  it('writes a ready-to-paste Claude Code configuration from the running listeners', async () => {
    await renderEditor(<ConfigEditor options={settings()} onOptionsChange={jest.fn()} />);
    await waitFor(() =>
      expect(backendGet).toHaveBeenCalledWith(
        '/api/datasources/uid/claude-code/resources/endpoints',
        undefined,
        undefined,
        { showErrorAlert: false }
      )
    );
    const shell = screen.getByTestId('cc-config-shell').textContent!;
    expect(shell).toContain('export CLAUDE_CODE_ENABLE_TELEMETRY=1');
    expect(shell).toContain('export OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf');
    expect(shell).toContain('export OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318');
    expect(shell).not.toContain('Authorization');
    const json = JSON.parse(screen.getByTestId('cc-config-settings').textContent!);
    expect(json.env.OTEL_LOGS_EXPORTER).toBe('otlp');
    expect(screen.getByText(/\/etc\/claude-code\/managed-settings.json/)).toBeInTheDocument();
  });

  it('follows the chosen protocol, public endpoint, token and options', async () => {
    await renderEditor(
      <ConfigEditor
        options={settings({
          jsonData: {
            otlpProtocol: 'grpc',
            otlpEndpoint: 'https://otlp.example.com',
            logToolDetails: true,
            includeRepository: true,
            resourceAttributes: 'team=platform',
          },
          secureJsonFields: { ingestToken: true },
        })}
        onOptionsChange={jest.fn()}
      />
    );
    const shell = screen.getByTestId('cc-config-shell').textContent!;
    expect(shell).toContain('export OTEL_EXPORTER_OTLP_PROTOCOL=grpc');
    expect(shell).toContain('export OTEL_EXPORTER_OTLP_ENDPOINT=https://otlp.example.com');
    expect(shell).toContain("export OTEL_EXPORTER_OTLP_HEADERS='Authorization=Bearer <ingest token>'");
    expect(shell).toContain('export OTEL_LOG_TOOL_DETAILS=1');
    expect(shell).toContain('export OTEL_METRICS_INCLUDE_REPOSITORY=1');
    expect(shell).toContain('export OTEL_RESOURCE_ATTRIBUTES=team=platform');
    // a configured token is shown as configured, never as its value
    expect(screen.getByDisplayValue('configured')).toBeInTheDocument();
  });

  it('stores the ingest token as a secure field', async () => {
    const onOptionsChange = jest.fn();
    await renderEditor(<ConfigEditor options={settings()} onOptionsChange={onOptionsChange} />);
    await userEvent.type(screen.getByPlaceholderText('a long random string'), 's');
    expect(onOptionsChange).toHaveBeenLastCalledWith(
      expect.objectContaining({ secureJsonData: { ingestToken: 's' }, jsonData: {} })
    );
  });

  it('resets a configured token', async () => {
    const onOptionsChange = jest.fn();
    await renderEditor(
      <ConfigEditor options={settings({ secureJsonFields: { ingestToken: true } })} onOptionsChange={onOptionsChange} />
    );
    await userEvent.click(screen.getByRole('button', { name: 'Reset' }));
    expect(onOptionsChange).toHaveBeenLastCalledWith(
      expect.objectContaining({ secureJsonFields: { ingestToken: false }, secureJsonData: { ingestToken: '' } })
    );
  });

  it('sets retention in days; empty keeps everything', async () => {
    const onOptionsChange = jest.fn();
    const view = await renderEditor(<ConfigEditor options={settings()} onOptionsChange={onOptionsChange} />);
    await userEvent.type(screen.getByLabelText(/^Retention \(days\)/), '9');
    expect(onOptionsChange).toHaveBeenLastCalledWith(expect.objectContaining({ jsonData: { retentionDays: 9 } }));
    view.unmount();
    await renderEditor(
      <ConfigEditor options={settings({ jsonData: { retentionDays: 30 } })} onOptionsChange={onOptionsChange} />
    );
    expect(screen.getByLabelText(/^Retention \(days\)/)).toHaveValue(30);
    await userEvent.clear(screen.getByLabelText(/^Retention \(days\)/));
    expect(onOptionsChange).toHaveBeenLastCalledWith(
      expect.objectContaining({ jsonData: { retentionDays: undefined } })
    );
  });

  it('sets a size limit in GB; empty means none', async () => {
    const onOptionsChange = jest.fn();
    const view = await renderEditor(<ConfigEditor options={settings()} onOptionsChange={onOptionsChange} />);
    await userEvent.type(screen.getByLabelText(/^Size limit \(GB\)/), '5');
    expect(onOptionsChange).toHaveBeenLastCalledWith(expect.objectContaining({ jsonData: { retentionMaxSizeGB: 5 } }));
    view.unmount();
    await renderEditor(
      <ConfigEditor options={settings({ jsonData: { retentionMaxSizeGB: 2.5 } })} onOptionsChange={onOptionsChange} />
    );
    expect(screen.getByLabelText(/^Size limit \(GB\)/)).toHaveValue(2.5);
    await userEvent.clear(screen.getByLabelText(/^Size limit \(GB\)/));
    expect(onOptionsChange).toHaveBeenLastCalledWith(
      expect.objectContaining({ jsonData: { retentionMaxSizeGB: undefined } })
    );
  });

  it('names the lowest role that reads content; Admins by default', async () => {
    const onOptionsChange = jest.fn();
    const view = await renderEditor(<ConfigEditor options={settings()} onOptionsChange={onOptionsChange} />);
    expect(screen.getByRole('radio', { name: 'Admins' })).toBeChecked();
    await userEvent.click(screen.getByRole('radio', { name: 'Editors' }));
    expect(onOptionsChange).toHaveBeenLastCalledWith(expect.objectContaining({ jsonData: { contentRole: 'Editor' } }));
    view.unmount();
    await renderEditor(
      <ConfigEditor options={settings({ jsonData: { contentRole: 'Viewer' } })} onOptionsChange={onOptionsChange} />
    );
    expect(screen.getByRole('radio', { name: 'Viewers' })).toBeChecked();
  });

  it('warns when the listener only accepts local connections', async () => {
    backendGet.mockResolvedValue({ ...endpoints, http: { state: 'listening', address: '127.0.0.1:4318' } });
    await renderEditor(<ConfigEditor options={settings()} onOptionsChange={jest.fn()} />);
    expect(await screen.findByText(/reachable only from the Grafana host/)).toBeInTheDocument();
  });

  it('does not ask the backend before the datasource is saved', async () => {
    await renderEditor(<ConfigEditor options={settings({ uid: '' })} onOptionsChange={jest.fn()} />);
    expect(backendGet).not.toHaveBeenCalled();
    expect(screen.getByTestId('cc-config-shell').textContent).toContain('http://localhost:4318');
  });
});
