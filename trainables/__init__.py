"""What a trial trains: tasks (model, module map, data, metric) and the Ray Tune trainable."""
