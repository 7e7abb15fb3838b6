# Fuzz targets (tests/fuzz/fuzz_*.c), one per parser of untrusted bytes, each defining
# LLVMFuzzerTestOneInput. Every build replays each target's corpus (tests/fuzz/corpus/<name>/)
# through tests/fuzz/replay.c as the ctest test fuzz.<name>, under the build's sanitizers.
# With -DKEYRELAY_FUZZ=ON (clang only) the targets are also built as libFuzzer programs
# fuzz_<name> for fuzzing sessions; see "Fuzzing" in README.md.

file(GLOB KR_FUZZ_TARGETS CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/fuzz_*.c)
foreach(src ${KR_FUZZ_TARGETS})
    get_filename_component(target ${src} NAME_WE)
    string(REGEX REPLACE "^fuzz_" "" name ${target})
    add_executable(replay_${name} ${src} ${CMAKE_CURRENT_LIST_DIR}/replay.c)
    target_link_libraries(replay_${name} PRIVATE keyrelay_api)
    keyrelay_target_defaults(replay_${name})
    add_test(NAME fuzz.${name}
             COMMAND replay_${name} ${CMAKE_CURRENT_LIST_DIR}/corpus/${name})
    set_tests_properties(fuzz.${name} PROPERTIES LABELS fuzz)
    keyrelay_valgrind_test(fuzz_${name} $<TARGET_FILE:replay_${name}>
                           ${CMAKE_CURRENT_LIST_DIR}/corpus/${name})
    if(KEYRELAY_FUZZ)
        add_executable(${target} ${src})
        target_link_libraries(${target} PRIVATE keyrelay_api)
        keyrelay_target_defaults(${target})
        target_link_options(${target} PRIVATE -fsanitize=fuzzer)
    endif()
endforeach()
