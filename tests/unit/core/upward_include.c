/* Compiled with the net layer's include path by the layer_upward_include_fails test: it must
 * not compile, because net/ may not see dtls/. */
#include "net.h"
#include "dtls_internal.h"
