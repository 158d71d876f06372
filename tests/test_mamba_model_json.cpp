// JSON parser/writer: round trips, escapes, number forms, and rejected inputs.
#include <gtest/gtest.h>

#include <cmath>

#include "mamba/json.h"

namespace gm {
namespace {

TEST(Json, ParsesEveryTypeAndKeepsKeyOrder) {
  const Json j = Json::parse(R"( {"b": [1, -2.5e3, true, false, null], "a": {"x": "y"}, "c": 0.1} )");
  ASSERT_TRUE(j.is_object());
  ASSERT_EQ(j.as_object().size(), 3u);
  EXPECT_EQ(j.as_object()[0].first, "b");
  EXPECT_EQ(j.as_object()[1].first, "a");
  const auto& b = j.at("b").as_array();
  EXPECT_EQ(b[0].as_int(), 1);
  EXPECT_EQ(b[1].as_number(), -2500.0);
  EXPECT_TRUE(b[2].as_bool());
  EXPECT_FALSE(b[3].as_bool());
  EXPECT_TRUE(b[4].is_null());
  EXPECT_EQ(j.at("a").at("x").as_string(), "y");
  EXPECT_EQ(j.at("c").as_number(), 0.1);
  EXPECT_EQ(j.find("missing"), nullptr);
  EXPECT_THROW(j.at("missing"), JsonError);
}

TEST(Json, DumpReadsBackIdentically) {
  Json j = Json::object();
  j.set("pi", 3.141592653589793).set("tiny", 1e-300).set("big", 9007199254740992.0);
  j.set("text", std::string("quote \" backslash \\ newline \n tab \t ctrl \x01 utf8 \xc3\xa9"));
  j.set("list", Json(Json::Array{Json(1), Json("two"), Json::object()}));
  for (int indent : {-1, 2}) {
    const Json back = Json::parse(j.dump(indent));
    EXPECT_EQ(back, j) << j.dump(indent);
  }
  EXPECT_EQ(Json(0.1).dump(), "0.1");  // shortest round-trip form
  EXPECT_EQ(Json(int64_t{123456789012}).dump(), "123456789012");
}

TEST(Json, DecodesUnicodeEscapes) {
  EXPECT_EQ(Json::parse(R"("\u00e9\u20ac\ud83d\ude00\/")").as_string(), "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80/");
}

TEST(Json, SetReplacesInPlace) {
  Json j = Json::object();
  j.set("a", 1).set("b", 2).set("a", 3);
  ASSERT_EQ(j.as_object().size(), 2u);
  EXPECT_EQ(j.as_object()[0].first, "a");
  EXPECT_EQ(j.at("a").as_int(), 3);
}

TEST(Json, RejectsMalformedInput) {
  for (const char* bad : {"", "{", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "01", "1.", "-", "1e", "tru", "\"abc",
                          "\"\\x\"", "\"\\ud800\"", "{\"a\":1,\"a\":2}", "[1] 2", "nan", "\"a\nb\""}) {
    EXPECT_THROW(Json::parse(bad), JsonError) << bad;
  }
  EXPECT_THROW(Json::parse(std::string(1000, '[')), JsonError);  // nesting bound, no stack overflow
}

TEST(Json, TypedAccessChecksTypes) {
  const Json j = Json::parse(R"({"n": 1.5, "s": "x"})");
  EXPECT_THROW(j.at("n").as_string(), JsonError);
  EXPECT_THROW(j.at("s").as_number(), JsonError);
  EXPECT_THROW(j.at("n").as_int(), JsonError);  // not an integer
  EXPECT_THROW(Json(7).as_int(0, 5), JsonError);
  EXPECT_THROW(Json(std::nan("")).dump(), JsonError);
}

}  // namespace
}  // namespace gm
