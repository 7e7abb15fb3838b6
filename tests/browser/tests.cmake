# Browser tests of the admin pages (static/): Debian's headless Chromium driven by
# playwright-core (tests/browser/install.sh installs both), against the shared test stack of
# tests/http/tests.cmake (fixture `stack`). Included from tests/CMakeLists.txt after
# http/tests.cmake. Screenshots land in tests/out/screenshots/.

add_test(NAME browser.pages
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/browser/node.sh --test
                 ${CMAKE_CURRENT_SOURCE_DIR}/browser/pages.test.mjs
         WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(browser.pages PROPERTIES
    FIXTURES_REQUIRED stack
    DEPENDS stack.up
    ENVIRONMENT "KEYRELAY_TEST_STACK=${CMAKE_BINARY_DIR}/stack;KEYRELAY_BIN_DIR=$<TARGET_FILE_DIR:keyrelay-fcgi>"
    REQUIRED_FILES "${CMAKE_CURRENT_SOURCE_DIR}/browser/node_modules/playwright-core/package.json"
    TIMEOUT 900
    RUN_SERIAL TRUE
    LABELS "browser")
# The fixture runs stack.down (FIXTURES_CLEANUP) only after this test has finished.
