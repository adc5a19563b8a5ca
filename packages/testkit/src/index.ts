/**
 * @warden/testkit: in-process clusters and real external parts (temp dirs, processes) for
 * tests under test/. May import anything; imported only by tests.
 */
export {};
