from tests.chaos.conftest import Stack, OA
async def test_dbg(stack: Stack) -> None:
    await stack.step(10, by=5)
    stack.sim.set_fault("oa", "CAT-1", model="gpt-x")
    print("faults", stack.sim.faults())
    for i in range(8):
        await stack.step(5, by=5)
        print(stack.clock.monotonic(), {k: (str(v.error_class), v.code) for k, v in stack.rt.store.latest_observations(OA).items()}, stack.state(OA))
    print(stack.sim.stats())
    assert 0
