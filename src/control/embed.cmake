# cmake -DIN=openapi.json -DOUT=openapi_json.cc -P embed.cmake: the document
# as a C++ string, so that the binary serves exactly what the repository has.
file(READ ${IN} body)
file(WRITE ${OUT} "// Generated from src/control/openapi.json: do not edit.\n"
  "namespace weft::control {\n"
  "extern const char* const openapi_json;\n"
  "const char* const openapi_json = R\"weft_openapi(${body})weft_openapi\";\n"
  "}  // namespace weft::control\n")
