import { DataSourcePlugin } from '@grafana/data';

import { ConfigEditor } from './components/ConfigEditor';
import { QueryEditor } from './components/QueryEditor';
import { DataSource } from './datasource';
import { ClaudeCodeOptions, ClaudeCodeQuery, ClaudeCodeSecureOptions } from './types';

export const plugin = new DataSourcePlugin<DataSource, ClaudeCodeQuery, ClaudeCodeOptions, ClaudeCodeSecureOptions>(
  DataSource
)
  .setConfigEditor(ConfigEditor)
  .setQueryEditor(QueryEditor);
