"""A task's side effect that a test counts: a line appended to a file, as a mail sent would be,
to tell what ran and how often (test_chaos, test_shutdown_reruns). The flows run in other
processes (a kernel, `labloom run`, a script) that import no test module: they take the
function as source, pasted into theirs."""

APPEND_LINE = '''
def append_line(path, line):
    """One line at the end of ``path``: opened per line, so a process killed between two
    lines leaves each line whole."""
    with open(path, "a") as f:
        f.write(line + "\\n")
'''
