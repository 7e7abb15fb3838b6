# The OpenAPI document (static/openapi.json) against the HTTP contract (../shared/spec/api.md).
add_test(NAME unit.openapi COMMAND python3 -B ${CMAKE_CURRENT_SOURCE_DIR}/unit/openapi_check.py)
