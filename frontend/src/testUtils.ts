import { DataSourceInstanceSettings, PluginType, ScopedVars } from '@grafana/data';
import { TemplateSrv } from '@grafana/runtime';

import { DataSource } from './datasource';
import { ClaudeCodeOptions } from './types';

/** Dashboard variables for tests: name → one value or several (multi-value). */
export type Variables = Record<string, string | string[]>;

type Formatter = string | ((value: string | string[]) => string) | undefined;

/** A TemplateSrv that replaces `$name`, `${name}` and `${name:sqlstring}` like Grafana does. */
export function fakeTemplateSrv(variables: Variables): TemplateSrv {
  const format = (value: string | string[], fmt: Formatter, name: string): string => {
    if (typeof fmt === 'function') {
      return fmt(value);
    }
    const values = Array.isArray(value) ? value : [value];
    if (fmt === 'sqlstring' || name.endsWith(':sqlstring')) {
      return values.map((v) => `'${v.replace(/'/g, "''")}'`).join(',');
    }
    return values.length > 1 ? `{${values.join(',')}}` : values[0];
  };
  const replace = (target?: string, scoped?: ScopedVars, fmt?: Formatter) =>
    (target ?? '').replace(/\$\{(\w+)(:\w+)?\}|\$(\w+)/g, (match, braced, braceFmt, bare) => {
      const name: string = braced ?? bare;
      const scopedValue = scoped?.[name]?.value;
      const value = scopedValue !== undefined ? String(scopedValue) : variables[name];
      if (value === undefined) {
        return match;
      }
      return format(value, braceFmt ? braceFmt.slice(1) : fmt, name);
    });
  return {
    replace,
    getVariables: () => [],
    containsTemplate: (t?: string) => /\$/.test(t ?? ''),
    updateTimeRange: () => undefined,
  } as unknown as TemplateSrv;
}

export const instanceSettings: DataSourceInstanceSettings<ClaudeCodeOptions> = {
  id: 1,
  uid: 'claude-code',
  type: 'vibe-claudecode-datasource',
  name: 'Claude Code',
  access: 'proxy',
  readOnly: false,
  jsonData: {},
  meta: {
    id: 'vibe-claudecode-datasource',
    name: 'Claude Code',
    type: PluginType.datasource,
    module: '',
    baseUrl: '',
    info: {
      author: { name: 'vibe' },
      description: '',
      links: [],
      logos: { small: '', large: '' },
      screenshots: [],
      updated: '',
      version: '',
    },
  },
};

export function makeDataSource(variables: Variables = {}): DataSource {
  return new DataSource(instanceSettings, fakeTemplateSrv(variables));
}
