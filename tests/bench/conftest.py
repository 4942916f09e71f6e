from tests.pose_fixture import tiny_task  # noqa: F401  (a fixture)
