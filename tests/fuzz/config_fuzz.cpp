// The config loader on any text: a config or a config_error naming the
// problem, never a crash (YAML syntax errors included).
#include "control/config.hpp"

#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    // No environment: a config naming ${VAR}s sees them all unset.
    (void)llmgate::control::load_config(text, "fuzz.yaml", [](const char*) -> const char* { return nullptr; });
  } catch (const llmgate::control::config_error&) {
  }
  return 0;
}
