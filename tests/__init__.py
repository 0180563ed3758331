"""The test suite: a package, so that pytest and the modules that import each other (tests.conftest,
tests.hardening, tests.test_page) share one instance of each module and its state."""
