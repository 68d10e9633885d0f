# stb from Debian's libstb-dev: its headers (included as <stb/stb_image.h>) and libstb, which holds
# the compiled implementations of stb_image, stb_image_resize and stb_image_write. Defines elbo::stb.
if(NOT TARGET elbo::stb)
  find_path(ELBO_STB_INCLUDE_DIR stb/stb_image.h REQUIRED)
  find_library(ELBO_STB_LIBRARY stb REQUIRED)
  add_library(elbo::stb UNKNOWN IMPORTED GLOBAL)
  set_target_properties(elbo::stb PROPERTIES IMPORTED_LOCATION "${ELBO_STB_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${ELBO_STB_INCLUDE_DIR}")
endif()
