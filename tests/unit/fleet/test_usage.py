from fleet.usage import describe_usage


def test_idle_node_is_not_in_use() -> None:
    assert describe_usage("") == ""
    assert describe_usage("gpu: \ncontainer: \n") == ""


def test_gpu_processes_and_containers_are_named() -> None:
    output = "gpu: 4242, python\ngpu: 4243, python\ncontainer: llm-train-7\n"
    expected = "2 GPU process(es): 4242, python, 4243, python; 1 running container(s): llm-train-7"
    assert describe_usage(output) == expected
