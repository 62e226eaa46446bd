"""Internal. A run's DAG as views draw it: the graph rebuilt from events, node layout, and
``Flow.visualize``'s static drawing. Pure Python; shared by the notebook widget and the Lab
extension."""
