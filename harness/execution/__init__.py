"""Running a plan of requests against a model: the plan, executors and the result cache."""
