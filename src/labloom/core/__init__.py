"""Internal. Definitions and the engine: tasks, flows, futures, states, the event stream, and
one ``FlowRun`` that runs a flow's graph. Imports nothing from Jupyter."""
