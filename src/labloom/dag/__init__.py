"""Internal. A run's DAG as views draw it: the graph rebuilt from events, node layout,
``Flow.visualize``'s static drawing, and the terminal's progress table (``console_progress``,
shown for scripts and the CLI). Pure Python; shared by the notebook widget, the Lab extension
and the terminal."""
