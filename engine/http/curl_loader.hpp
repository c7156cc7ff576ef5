// libcurl is opened at the first HTTP client, not linked (engine/http/curl_loader.cpp says why).
#pragma once

namespace engine::http {

// Opens libcurl.so.4 once; throws std::runtime_error saying what is missing when it cannot.
void load_curl();

}  // namespace engine::http
