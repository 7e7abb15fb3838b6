# Self-test of the stub AI provider (tests/stub/stub_provider.py), included from
# tests/CMakeLists.txt. Needs only python3; starts and stops its own stub on a free loopback
# port, so it runs in parallel with everything else.
add_test(NAME stub.selftest COMMAND python3 -B ${CMAKE_CURRENT_SOURCE_DIR}/stub/test_stub.py)
set_tests_properties(stub.selftest PROPERTIES TIMEOUT 120 LABELS stub)
