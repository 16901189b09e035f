# wdlab_test(NAME name SOURCES ... LIBS ... [LABELS ...] [TIMEOUT s])
# Builds a doctest executable and registers each of its test cases with ctest.
include(${doctest_DIR}/doctest.cmake OPTIONAL RESULT_VARIABLE _doctest_cmake)
function(wdlab_test)
  cmake_parse_arguments(T "" "NAME;TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE wdlab_doctest_main ${T_LIBS})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 600)
  endif()
  set(_labels ${T_LABELS})
  if(NOT _labels)
    set(_labels cpu)
  endif()
  doctest_discover_tests(${T_NAME}
    TEST_PREFIX "${T_NAME}: "
    PROPERTIES LABELS "${_labels}" TIMEOUT ${T_TIMEOUT} SKIP_RETURN_CODE 77
               ENVIRONMENT WDLAB_THREADS=1
    WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
endfunction()
