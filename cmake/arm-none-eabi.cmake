# Toolchain file: bare-metal Cortex-M0+ (RP2040 class) with Debian's arm-none-eabi-gcc + newlib.
#
#   cmake -S . -B build/arm -DCMAKE_TOOLCHAIN_FILE=cmake/arm-none-eabi.cmake \
#         -DSPRIG_WITH_OS=OFF -DSPRIG_BUILD_TESTS=OFF -DSPRIG_BUILD_EXAMPLES=OFF \
#         -DSPRIG_BUILD_BENCH=OFF
#
# Only the portable libraries are built (static archives); tools/size_report.sh reports their
# sizes and stack frames (-fstack-usage writes a .su file next to every object).
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)

set(SPRIG_CROSS_PREFIX arm-none-eabi-)
set(CMAKE_C_COMPILER ${SPRIG_CROSS_PREFIX}gcc)
set(CMAKE_ASM_COMPILER ${SPRIG_CROSS_PREFIX}gcc)
find_program(CMAKE_SIZE ${SPRIG_CROSS_PREFIX}size)

# No linker script or startup code here: try_compile builds a static library, not a program.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

set(CMAKE_C_FLAGS_INIT
  "-mcpu=cortex-m0plus -mthumb -Os -ffunction-sections -fdata-sections -fstack-usage")
set(CMAKE_ASM_FLAGS_INIT "-mcpu=cortex-m0plus -mthumb")
# For firmware images linked with this file (examples bring their own linker script).
set(CMAKE_EXE_LINKER_FLAGS_INIT "-specs=nano.specs -specs=nosys.specs -Wl,--gc-sections")

set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
