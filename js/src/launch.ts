// "Run a flow…" in the Flows panel: choose a schedule's flow or one that ran from a file, edit
// its parameters in a form built from the flow's signature, run it (POST flows/run). The new
// run is in the store when the answer comes, so the panel lists it at once.
import { TranslationBundle, nullTranslator } from '@jupyterlab/translation';

import { el, requestAPI } from './api';
import {
  FormValues,
  IFlowForm,
  IFormField,
  ILaunchable,
  initialValues,
  launchableLabel,
  memoryKey,
  payload,
  rememberable
} from './launchmodel';

export class LaunchSection {
  readonly node: HTMLDetailsElement;

  constructor(
    private launched: (runId: string) => void,
    private trans: TranslationBundle = nullTranslator.load('labloom')
  ) {
    this.node = el('details', { class: 'labloom-launch' }) as HTMLDetailsElement;
    this.node.append(el('summary', {}, trans.__('Run a flow with parameters…')));
    this.choice = el('select', {
      class: 'labloom-launch-choice jp-mod-styled',
      'aria-label': trans.__('Flow to run')
    }) as HTMLSelectElement;
    this.choice.addEventListener('change', () => void this.choose());
    this.fields = el('div', { class: 'labloom-launch-fields' });
    this.message = el('div', { class: 'labloom-launch-message', role: 'status' });
    this.node.append(this.choice, this.fields, this.message);
    this.node.addEventListener('toggle', () => {
      if (this.node.open) {
        void this.refresh();
      }
    });
  }

  /** Open the section on a schedule's flow (its "Run with…" button) or any launchable one. */
  async open(which: { schedule?: string; target?: string } = {}): Promise<void> {
    this.node.open = true;
    await this.refresh();
    const index = this.flows.findIndex(f =>
      which.schedule ? f.schedule === which.schedule : f.target === which.target
    );
    if (index >= 0) {
      this.choice.value = String(index);
      await this.choose();
    }
    this.node.scrollIntoView({ block: 'nearest' });
  }

  async refresh(): Promise<void> {
    const chosen = this.flows[Number(this.choice.value)];
    try {
      this.flows = (await requestAPI<{ flows: ILaunchable[] }>('flows')).flows;
    } catch (error: any) {
      this.say(this.trans.__('[labloom] cannot list flows: %1', error.message || error), true);
      return;
    }
    const options = [el('option', { value: '' }, this.trans.__('Choose a flow…'))];
    this.flows.forEach((item, i) =>
      options.push(el('option', { value: String(i) }, launchableLabel(item)))
    );
    this.choice.replaceChildren(...options);
    if (!this.flows.length) {
      this.say(
        this.trans.__(
          'No flow to run yet: a flow shows here once it has run from a file (`labloom run file.py:flow`) or has a schedule.'
        ),
        false
      );
    }
    const again = chosen ? this.flows.findIndex(f => f.target === chosen.target) : -1;
    this.choice.value = again >= 0 ? String(again) : '';
  }

  private async choose(): Promise<void> {
    const item = this.flows[Number(this.choice.value)];
    this.fields.replaceChildren();
    this.form = null;
    this.say('', false);
    if (!item || this.choice.value === '') {
      return;
    }
    const query = item.schedule
      ? `schedule=${encodeURIComponent(item.schedule)}`
      : `target=${encodeURIComponent(item.target)}`;
    this.say(this.trans.__('Reading the parameters of %1…', item.flow), false);
    let form: IFlowForm;
    try {
      form = await requestAPI<IFlowForm>(`flows/params?${query}`);
    } catch (error: any) {
      this.say(error.message || String(error), true);
      return;
    }
    this.say('', false);
    this.form = form;
    let remembered: FormValues = {};
    try {
      remembered = JSON.parse(window.localStorage.getItem(memoryKey(form)) || '{}');
    } catch {
      // a damaged entry: start from the defaults
    }
    const values = initialValues(form, remembered);
    this.inputs = new Map();
    const rows = form.params.map(field => this.fieldRow(field, values[field.name]));
    const run = el(
      'button',
      { class: 'labloom-launch-run jp-mod-styled jp-mod-accept', type: 'button' },
      this.trans.__('Run %1', form.flow)
    );
    run.addEventListener('click', () => void this.run());
    if (!rows.length) {
      rows.push(el('p', { class: 'labloom-empty' }, this.trans.__('This flow takes no parameters.')));
    }
    this.fields.replaceChildren(...rows, run);
  }

  private fieldRow(field: IFormField, value: string): HTMLElement {
    const id = `labloom-launch-${field.name}`;
    const label = el('label', { for: id, class: 'labloom-launch-label' }, field.name);
    label.append(el('span', { class: 'labloom-launch-type' }, ` ${field.type}${field.required ? ' *' : ''}`));
    let input: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement;
    if (field.kind === 'bool') {
      input = el('input', { type: 'checkbox', id }) as HTMLInputElement;
      input.checked = value === 'true';
    } else if (field.kind === 'choice') {
      input = el('select', { id, class: 'jp-mod-styled' }) as HTMLSelectElement;
      const choices = [...(field.optional || !field.default ? [''] : []), ...(field.choices || [])];
      input.append(...choices.map(c => el('option', { value: c }, c)));
      input.value = value;
    } else if (field.kind === 'json') {
      input = el('textarea', {
        id,
        class: 'jp-mod-styled',
        rows: '2',
        placeholder: this.trans.__('JSON, e.g. [1, 2] or {"a": 1}')
      }) as HTMLTextAreaElement;
      input.value = value;
    } else {
      input = el('input', {
        id,
        class: 'jp-mod-styled',
        type: field.kind === 'secret' ? 'password' : 'text',
        autocomplete: 'off',
        inputmode: field.kind === 'int' || field.kind === 'float' ? 'decimal' : 'text'
      }) as HTMLInputElement;
      input.value = value;
    }
    input.setAttribute('data-param', field.name);
    input.setAttribute('data-kind', field.kind);
    this.inputs.set(field.name, input);
    const row = el('div', { class: 'labloom-launch-field' });
    row.append(label, input);
    return row;
  }

  private values(): FormValues {
    const values: FormValues = {};
    for (const [name, input] of this.inputs) {
      values[name] =
        input instanceof HTMLInputElement && input.type === 'checkbox'
          ? String(input.checked)
          : input.value;
    }
    return values;
  }

  private async run(): Promise<void> {
    const form = this.form;
    if (!form) {
      return;
    }
    const values = this.values();
    const body = {
      ...(form.schedule ? { schedule: form.schedule } : { target: form.target }),
      params: payload(form, values)
    };
    this.say(this.trans.__('Starting %1…', form.flow), false);
    try {
      const answer = await requestAPI<{ run_id: string }>('flows/run', {
        method: 'POST',
        body: JSON.stringify(body)
      });
      window.localStorage.setItem(memoryKey(form), JSON.stringify(rememberable(form, values)));
      this.say(this.trans.__('Started run %1 of %2.', answer.run_id, form.flow), false);
      this.launched(answer.run_id);
    } catch (error: any) {
      this.say(error.message || String(error), true);
    }
  }

  private say(text: string, error: boolean): void {
    this.message.textContent = text;
    this.message.classList.toggle('labloom-error', error);
  }

  private choice: HTMLSelectElement;
  private fields: HTMLElement;
  private message: HTMLElement;
  private flows: ILaunchable[] = [];
  private form: IFlowForm | null = null;
  private inputs = new Map<string, HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement>();
}
