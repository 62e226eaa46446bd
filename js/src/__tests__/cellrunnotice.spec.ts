import { noStoredRun, notARunId } from '../cellrunnotice';

// nullTranslator's bundle, without importing @jupyterlab in jest: %1, %2 filled in.
const trans: any = {
  __: (text: string, ...args: any[]) =>
    text.replace(/%(\d)/g, (_: string, n: string) => String(args[Number(n) - 1]))
};

const answer = (status: number, message: string) =>
  Object.assign(new Error(message), { response: { status } });

describe('noStoredRun', () => {
  it('says a run the store lacks is not there, and why it may be', () => {
    const line = noStoredRun(answer(404, 'no such run'), 'abc123', trans);
    expect(line).toContain("labloom run abc123 is not in labloom's store");
    expect(line).toContain('deleted');
  });

  it('names the fix when the server extension does not answer', () => {
    const line = noStoredRun(answer(404, '<html>404: Not Found</html>'), 'abc123', trans);
    expect(line).toContain('jupyter server extension enable labloom');
    expect(line).toContain('abc123');
  });

  it('passes on any other failure', () => {
    const line = noStoredRun(new TypeError('Failed to fetch'), 'abc123', trans);
    expect(line).toBe(
      'labloom cannot read run abc123 (Failed to fetch); the summary saved with the notebook:'
    );
  });
});

describe('notARunId', () => {
  it('lets a run id through to the server, and nothing else', () => {
    expect(notARunId('0db0fc361c30', trans)).toBeNull();
    expect(notARunId('../../api/contents', trans)).toContain('names no labloom run');
    expect(notARunId('', trans)).toContain('names no labloom run');
  });
});
