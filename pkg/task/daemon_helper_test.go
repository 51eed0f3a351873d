package task_test

const helperEnv = "CRI_RUNTIME_TASK_TEST_HELPER"

func runHelper() int { return 0 }
