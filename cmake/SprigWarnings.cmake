# Project-wide warning flags (STYLE.md). Applied per target with sprig_target_warnings().
set(SPRIG_WARNING_FLAGS
  -Wall -Wextra -Wshadow -Wundef -Wstrict-prototypes -Wmissing-prototypes -Wvla
  -Wpointer-arith -Wcast-qual -Wformat=2)
if(SPRIG_WERROR)
  list(APPEND SPRIG_WARNING_FLAGS -Werror)
endif()

function(sprig_target_warnings target)
  target_compile_options(${target} PRIVATE ${SPRIG_WARNING_FLAGS})
endfunction()
