# Installing the suite: `cmake --install <build> --prefix <dir>` puts every
# library, its public headers, the front ends, a CMake package
# (find_package(ssihv CONFIG) -> ssihv::<name>) and one pkg-config file per
# library (ssihv-<name>.pc) under <dir>. Nothing private is installed:
# libX/src/, tests/ and bench/ never are.
#
# A library joins with ONE line in its CMakeLists.txt, after it is declared:
#
#   ssihv_add_library(NAME foo SOURCES ... DEPS ...)
#   ssihv_install_library(foo)
#
# A front end with ssihv_install_program(<target>). The root CMakeLists.txt
# calls ssihv_install_package() once, after every library was added.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(SSIHV_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/ssihv)
# The C++ ABI of these libraries is not stable before 1.0: the SONAME
# carries major.minor (libssihv_pager.so.0.1), from 1.0 the major only.
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(SSIHV_SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR})
else()
  set(SSIHV_SOVERSION ${PROJECT_VERSION_MAJOR})
endif()
# Installed executables find the installed shared libraries wherever the
# prefix is moved to.
if(BUILD_SHARED_LIBS)
  set(CMAKE_INSTALL_RPATH "$ORIGIN/../${CMAKE_INSTALL_LIBDIR}")
endif()

# ssihv_install_library(<name>)
#   Installs target ssihv_<name> (exported as ssihv::<name>), the headers
#   under the calling directory's include/, and ssihv-<name>.pc.
function(ssihv_install_library name)
  set(target ssihv_${name})
  if(NOT TARGET ${target})
    message(FATAL_ERROR "ssihv_install_library(${name}): no target ${target}")
  endif()
  set_target_properties(${target} PROPERTIES
    EXPORT_NAME ${name}
    VERSION ${PROJECT_VERSION}
    SOVERSION ${SSIHV_SOVERSION})
  install(TARGETS ${target} EXPORT ssihvTargets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
    INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
  # Two libraries may share one include/ (libdirectory, libpager): once.
  set(include_dir ${CMAKE_CURRENT_SOURCE_DIR}/include)
  get_property(done GLOBAL PROPERTY SSIHV_INSTALLED_INCLUDE_DIRS)
  if(EXISTS ${include_dir} AND NOT include_dir IN_LIST done)
    install(DIRECTORY ${include_dir}/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
            FILES_MATCHING PATTERN "*.h")
    set_property(GLOBAL APPEND PROPERTY SSIHV_INSTALLED_INCLUDE_DIRS
                 ${include_dir})
  endif()
  set_property(GLOBAL APPEND PROPERTY SSIHV_INSTALLED_LIBRARIES ${name})
  set_property(GLOBAL APPEND PROPERTY SSIHV_INSTALLED_TARGETS ${target})
  # The link dependencies are final only once the directory is processed.
  cmake_language(EVAL CODE
    "cmake_language(DEFER CALL _ssihv_write_pc_file [[${name}]])")
endfunction()

# ssihv_install_program(<target>): a front end, into <prefix>/bin.
function(ssihv_install_program target)
  install(TARGETS ${target} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  set_property(GLOBAL APPEND PROPERTY SSIHV_INSTALLED_TARGETS ${target})
endfunction()

# How a link dependency appears in a .pc file: a pkg-config module
# (Requires) or linker flags (Libs). An unknown one is an error here rather
# than a .pc file that fails to link later.
function(_ssihv_pc_entry dep out_module out_flags)
  set(module "")
  set(flags "")
  if(dep MATCHES "^ssihv(::|_)(.+)$")
    string(REPLACE "_" "-" module "ssihv-${CMAKE_MATCH_2}")
  elseif(dep MATCHES "^absl::(.+)$")
    set(module "absl_${CMAKE_MATCH_1}")  # Debian's abseil ships absl_*.pc
  elseif(dep STREQUAL "nlohmann_json::nlohmann_json")
    set(module nlohmann_json)
  elseif(dep STREQUAL "OpenSSL::Crypto")
    set(module libcrypto)
  elseif(dep STREQUAL "PkgConfig::IBVERBS")
    set(module libibverbs)
  elseif(dep STREQUAL "Threads::Threads")
    set(flags "-pthread")
  elseif(dep STREQUAL "Boost::headers")
    # Header-only and included by .cc files only: nothing for consumers.
  else()
    message(FATAL_ERROR "ssihv pkg-config: no mapping for link dependency "
      "'${dep}': add one to _ssihv_pc_entry in cmake/SsihvInstall.cmake")
  endif()
  set(${out_module} "${module}" PARENT_SCOPE)
  set(${out_flags} "${flags}" PARENT_SCOPE)
endfunction()

# Writes ssihv-<name>.pc from the target's link dependencies. A static
# library cannot be linked without its dependencies, so in a static build
# every one is public (Requires/Libs: `pkg-config --libs` alone links);
# in a shared build the private ones go to Requires.private/Libs.private.
function(_ssihv_write_pc_file name)
  set(target ssihv_${name})
  get_target_property(all ${target} LINK_LIBRARIES)
  get_target_property(iface ${target} INTERFACE_LINK_LIBRARIES)
  if(NOT all)
    set(all "")
  endif()
  if(NOT iface)
    set(iface "")
  endif()
  set(public "")
  foreach(dep IN LISTS iface)
    if(NOT dep MATCHES "^\\$<LINK_ONLY:")
      list(APPEND public ${dep})
    endif()
  endforeach()
  foreach(kind requires requires_private libs libs_private)
    set(${kind} "")
  endforeach()
  foreach(dep IN LISTS all)
    _ssihv_pc_entry(${dep} module flags)
    if(BUILD_SHARED_LIBS AND NOT dep IN_LIST public)
      list(APPEND requires_private ${module})
      list(APPEND libs_private ${flags})
    else()
      list(APPEND requires ${module})
      list(APPEND libs ${flags})
    endif()
  endforeach()
  # C programs link these C++ libraries with the C compiler driver.
  if(BUILD_SHARED_LIBS)
    list(APPEND libs_private -lstdc++ -lm)
  else()
    list(APPEND libs -lstdc++ -lm)
  endif()
  foreach(kind requires requires_private libs libs_private)
    list(REMOVE_DUPLICATES ${kind})
  endforeach()
  list(JOIN requires ", " requires)
  list(JOIN requires_private ", " requires_private)
  list(JOIN libs " " libs)
  list(JOIN libs_private " " libs_private)
  # Relocatable: the prefix is found from the .pc file's own location, so
  # `cmake --install --prefix <anywhere>` needs no reconfiguration.
  file(RELATIVE_PATH up /root/${CMAKE_INSTALL_LIBDIR}/pkgconfig /root)
  string(REGEX REPLACE "/$" "" up "${up}")
  string(REPLACE "_" "-" pc_name "ssihv-${name}")
  set(pc ${CMAKE_BINARY_DIR}/pkgconfig/${pc_name}.pc)
  file(CONFIGURE OUTPUT ${pc} @ONLY CONTENT
"prefix=\${pcfiledir}/@up@
libdir=\${prefix}/@CMAKE_INSTALL_LIBDIR@
includedir=\${prefix}/@CMAKE_INSTALL_INCLUDEDIR@

Name: @pc_name@
Description: ssihv::@name@ (single-system-image hypervisor suite)
Version: @PROJECT_VERSION@
Requires: @requires@
Requires.private: @requires_private@
Libs: -L\${libdir} -l@target@ @libs@
Libs.private: @libs_private@
Cflags: -I\${includedir}
")
  install(FILES ${pc} DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endfunction()

# The CMake package: ssihvTargets.cmake (every installed library),
# ssihvConfig.cmake (finds the dependencies, then includes the targets) and
# ssihvConfigVersion.cmake.
function(ssihv_install_package)
  install(EXPORT ssihvTargets NAMESPACE ssihv::
          DESTINATION ${SSIHV_INSTALL_CMAKEDIR})
  get_property(SSIHV_LIBRARIES GLOBAL PROPERTY SSIHV_INSTALLED_LIBRARIES)
  configure_package_config_file(
    ${PROJECT_SOURCE_DIR}/cmake/ssihvConfig.cmake.in
    ${CMAKE_BINARY_DIR}/ssihvConfig.cmake
    INSTALL_DESTINATION ${SSIHV_INSTALL_CMAKEDIR})
  # 0.x: a minor version may break the API; from 1.0, the major.
  if(PROJECT_VERSION_MAJOR EQUAL 0)
    set(compat SameMinorVersion)
  else()
    set(compat SameMajorVersion)
  endif()
  write_basic_package_version_file(${CMAKE_BINARY_DIR}/ssihvConfigVersion.cmake
    VERSION ${PROJECT_VERSION} COMPATIBILITY ${compat})
  install(FILES ${CMAKE_BINARY_DIR}/ssihvConfig.cmake
                ${CMAKE_BINARY_DIR}/ssihvConfigVersion.cmake
          DESTINATION ${SSIHV_INSTALL_CMAKEDIR})
  # What `cmake --install` needs built, for a build of just that
  # (tests/install/shared_build.sh: `ninja $(cat ssihv-install-targets.txt)`).
  get_property(targets GLOBAL PROPERTY SSIHV_INSTALLED_TARGETS)
  list(JOIN targets "\n" targets)
  file(WRITE ${CMAKE_BINARY_DIR}/ssihv-install-targets.txt "${targets}\n")
endfunction()
