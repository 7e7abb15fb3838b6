# HTTP tests against a whole stack (MariaDB, keyrelay-fcgi, keyrelay-runner, nginx), included
# from tests/CMakeLists.txt. The fixture `stack` starts one stack in ${CMAKE_BINARY_DIR}/stack
# (tests/lib/krstack.py up) before the first HTTP test and stops it after the last one;
# every tests/http/test_*.py is the test http.<name>. See tests/lib/krstack.py for the API.

find_package(Python3 COMPONENTS Interpreter)
if(Python3_Interpreter_FOUND)
    set(KR_PYTHON ${Python3_EXECUTABLE})
else()
    set(KR_PYTHON python3)
endif()

set(KR_STACK_DIR ${CMAKE_BINARY_DIR}/stack)
set(KR_STACK_PY ${CMAKE_SOURCE_DIR}/tests/lib/krstack.py)
# The directory of the three programs (they are built side by side in fcgi/).
set(KR_BIN_DIR_ENV "KEYRELAY_BIN_DIR=$<TARGET_FILE_DIR:keyrelay-fcgi>")
set(KR_STACK_ENV "KEYRELAY_TEST_STACK=${KR_STACK_DIR}")

# test_batch.py drives the library's batch store directly through this program.
add_executable(kr-batch-probe ${CMAKE_CURRENT_LIST_DIR}/batch_probe.c)
target_link_libraries(kr-batch-probe PRIVATE keyrelay)
keyrelay_target_defaults(kr-batch-probe)
set(KR_PROBE_ENV "KEYRELAY_BATCH_PROBE=$<TARGET_FILE:kr-batch-probe>")

add_test(NAME stack.up COMMAND ${KR_PYTHON} -B ${KR_STACK_PY} up ${KR_STACK_DIR})
set_tests_properties(stack.up PROPERTIES
    FIXTURES_SETUP stack
    ENVIRONMENT "${KR_BIN_DIR_ENV}"
    # The stack needs all three programs; naming them makes a missing one a clear failure.
    REQUIRED_FILES "$<TARGET_FILE:keyrelay-fcgi>;$<TARGET_FILE:keyrelay-runner>;$<TARGET_FILE:keyrelay-admin>"
    TIMEOUT 300
    LABELS "http;stack")

# Fails when a program logged a sanitizer report or did not stop on SIGTERM.
add_test(NAME stack.down COMMAND ${KR_PYTHON} -B ${KR_STACK_PY} down ${KR_STACK_DIR})
set_tests_properties(stack.down PROPERTIES
    FIXTURES_CLEANUP stack
    TIMEOUT 120
    LABELS "http;stack")

file(GLOB KR_HTTP_TESTS CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/test_*.py)
set(KR_HTTP_TEST_NAMES)
foreach(script ${KR_HTTP_TESTS})
    get_filename_component(name ${script} NAME_WE)
    string(REGEX REPLACE "^test_" "" name ${name})
    add_test(NAME http.${name} COMMAND ${KR_PYTHON} -B ${script}
             WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
    set_tests_properties(http.${name} PROPERTIES
        FIXTURES_REQUIRED stack
        DEPENDS stack.up
        ENVIRONMENT "${KR_STACK_ENV};${KR_BIN_DIR_ENV};${KR_PROBE_ENV}"
        TIMEOUT 300
        LABELS http)
    list(APPEND KR_HTTP_TEST_NAMES http.${name})
endforeach()
if(KR_HTTP_TEST_NAMES)
    set_tests_properties(stack.down PROPERTIES DEPENDS "${KR_HTTP_TEST_NAMES}")
endif()
