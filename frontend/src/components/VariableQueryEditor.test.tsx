import React from 'react';
import { render, screen } from '@testing-library/react';
import userEvent from '@testing-library/user-event';

import { makeDataSource } from '../testUtils';
import { VariableQueryEditor } from './VariableQueryEditor';

describe('VariableQueryEditor', () => {
  it('chooses the key whose values the variable lists', async () => {
    const onChange = jest.fn();
    render(
      <VariableQueryEditor
        query={{ refId: '', key: '' }}
        datasource={makeDataSource()}
        onChange={onChange}
        onRunQuery={jest.fn()}
      />
    );
    await userEvent.click(screen.getByLabelText('Values of'));
    await userEvent.click(await screen.findByText('Session', { selector: 'span' }));
    expect(onChange).toHaveBeenLastCalledWith({ refId: 'variable', key: 'session' });
  });

  it('keeps a custom key and sets a limit', async () => {
    const onChange = jest.fn();
    render(
      <VariableQueryEditor
        query={{ refId: 'A', key: 'cost_center' }}
        datasource={makeDataSource()}
        onChange={onChange}
        onRunQuery={jest.fn()}
      />
    );
    expect(screen.getByText('cost_center')).toBeInTheDocument();
    await userEvent.type(screen.getByLabelText('Limit'), '25');
    await userEvent.tab();
    expect(onChange).toHaveBeenLastCalledWith({ refId: 'A', key: 'cost_center', limit: 25 });
  });
});
