#pragma once
// `llmgate bench` on the command line: runs the load with a progress line
// on stderr (a bar on a terminal, a plain line every few seconds otherwise),
// prints the summary table on stdout and writes the JSON summary to a file.
#include "bench/load_generator.hpp"

#include <string>

namespace llmgate::bench {

struct command_options {
  load_options load;
  std::string json_path; // empty: no JSON file
  bool quiet = false;    // no progress lines
};

// Exit status: 0 when the run happened (whatever the server answered), 1
// when it could not (unreachable target), 2 for bad options.
[[nodiscard]] int run_command(command_options opts);

// "http://h:p" and "http://h:p/v1" name the chat endpoint of that server.
[[nodiscard]] std::string chat_url(std::string url);

} // namespace llmgate::bench
