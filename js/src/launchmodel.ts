// The launch form's model: the fields GET flows/params describes, the values typed, and what is
// sent and what is remembered. Values are checked by the server with the CLI's --param rules
// (export/params.py): the form sends the text typed and shows the server's reason.

export type FieldKind = 'bool' | 'int' | 'float' | 'str' | 'choice' | 'secret' | 'json';

export interface IFormField {
  name: string;
  kind: FieldKind;
  type: string; // the annotation as Python spells it: "int", "list[int]", ...
  required: boolean;
  optional: boolean; // None is accepted too
  default: string | null; // the text the CLI would take; never a secret's
  choices?: string[];
}

export interface IFlowForm {
  flow: string;
  description: string;
  target: string;
  schedule: string | null;
  params: IFormField[];
}

export interface ILaunchable {
  target: string;
  flow: string;
  schedule: string | null;
  last_run: number | null;
}

export type FormValues = Record<string, string>;

/** Where a form's values are remembered between launches (the browser's localStorage). */
export function memoryKey(form: Pick<IFlowForm, 'target' | 'schedule'>): string {
  return `labloom:launch:${form.schedule ? `schedule:${form.schedule}` : form.target}`;
}

/** What the fields start with: the values remembered from the last launch, else defaults. */
export function initialValues(form: IFlowForm, remembered: FormValues = {}): FormValues {
  const values: FormValues = {};
  for (const field of form.params) {
    const kept = field.kind === 'secret' ? undefined : remembered[field.name];
    values[field.name] =
      kept ?? field.default ?? (field.kind === 'bool' ? 'false' : '');
  }
  return values;
}

/** The body's params: a field left empty is left out, so the flow's default applies (or the
 * server says the parameter is missing). */
export function payload(form: IFlowForm, values: FormValues): Record<string, string> {
  const params: Record<string, string> = {};
  for (const field of form.params) {
    const value = values[field.name] ?? '';
    if (value !== '') {
      params[field.name] = value;
    }
  }
  return params;
}

/** What may be kept for next time: everything but secrets. */
export function rememberable(form: IFlowForm, values: FormValues): FormValues {
  const kept: FormValues = {};
  for (const field of form.params) {
    if (field.kind !== 'secret' && field.name in values) {
      kept[field.name] = values[field.name];
    }
  }
  return kept;
}

/** How a launchable flow is named in the form's chooser. */
export function launchableLabel(item: ILaunchable): string {
  if (item.schedule) {
    return `${item.schedule} (schedule of ${item.flow})`;
  }
  const file = item.target.replace(/:[^:/\\]*$/, '').split(/[\\/]/).pop() || item.target;
  return `${item.flow} (${file})`;
}
