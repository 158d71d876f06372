// ModelConfig: .ini parsing and its errors, JSON round trip (including mamba_ssm's
// config.json form), validation of unsupported variants, the shipped configs/*.ini.
#include <gtest/gtest.h>

#include <filesystem>

#include "mamba/config.h"
#include "mamba/model.h"
#include "tests/test_mamba_model_util.h"
#include "tests/test_support.h"

namespace gm {
namespace {

TEST(ModelConfig, IniSectionAndAutoRank) {
  const ModelConfig c = ModelConfig::from_ini_text(
      "# comment\n[run]\nsteps = 5\n[model]\nd_model = 40 ; trailing comment\nn_layer=3\ndt_rank = auto\n"
      "tie_embeddings = false\nrms_eps = 1e-6\n",
      "x.ini");
  EXPECT_EQ(c.d_model, 40);
  EXPECT_EQ(c.n_layer, 3);
  EXPECT_EQ(c.dt_rank, 0);  // auto is kept, so a later d_model override still gets the automatic rank
  EXPECT_EQ(c.rank(), 3);   // ceil(40 / 16)
  ModelConfig wider = c;
  wider.d_model = 64;
  EXPECT_EQ(wider.rank(), 4);
  EXPECT_EQ(c, c.resolved());  // equality compares the effective rank
  EXPECT_EQ(c.d_inner(), 80);
  EXPECT_FALSE(c.tie_embeddings);
  EXPECT_EQ(c.rms_eps, 1e-6);
  EXPECT_EQ(c.d_state, 16);  // defaults are mamba_ssm's
  EXPECT_EQ(c.d_conv, 4);
}

TEST(ModelConfig, IniErrorsNameFileAndLine) {
  auto message = [](const std::string& text) {
    try {
      ModelConfig::from_ini_text(text, "cfg.ini");
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("[model]\nd_model = 64\nbogus = 1\n").find("cfg.ini:3"), std::string::npos);
  EXPECT_NE(message("[model]\nd_model = 6x4\n").find("cfg.ini:2"), std::string::npos);
  EXPECT_NE(message("[model]\nd_model\n").find("cfg.ini:2"), std::string::npos);
  EXPECT_NE(message("[other]\nd_model = 64\n").find("no [model] section"), std::string::npos);
  EXPECT_NE(message("[model]\nbidirectional = true\n").find("not supported yet"), std::string::npos);
  EXPECT_NE(message("[model]\nrc_equivariant = yes\n").find("not supported yet"), std::string::npos);
  EXPECT_NE(message("[model]\nobjective = mlm\n").find("not supported yet"), std::string::npos);
  EXPECT_NE(message("[model]\nobjective = mask\n").find("unknown objective"), std::string::npos);
  EXPECT_NE(message("[model]\nvocab = 8\n").find("vocab"), std::string::npos);
  EXPECT_THROW(ModelConfig::from_ini("/nonexistent/dir/model.ini"), std::runtime_error);
}

TEST(ModelConfig, JsonRoundTripAndMambaSsmForm) {
  ModelConfig c = test::small_config(40, 3);
  c.tie_embeddings = false;
  c.dt_min = 2e-3;
  c.rms_eps = 1e-6;
  const ModelConfig back = ModelConfig::from_json(Json::parse(c.to_json().dump()));
  EXPECT_EQ(back, c);
  // mamba_ssm key names at the top level, genomamba extras under "genomamba".
  const Json j = c.to_json();
  EXPECT_EQ(j.at("vocab_size").as_int(), 16);
  EXPECT_EQ(j.at("ssm_cfg").at("d_state").as_int(), 8);
  EXPECT_EQ(j.at("genomamba").at("objective").as_string(), "causal");

  // A mamba_ssm config.json with only some keys: the rest are mamba_ssm's defaults.
  const ModelConfig m = ModelConfig::from_json(Json::parse(
      R"({"d_model": 256, "n_layer": 8, "vocab_size": 16, "ssm_cfg": {"dt_rank": "auto"}, "rms_norm": true})"));
  EXPECT_EQ(m.rank(), 16);
  EXPECT_EQ(m.d_state, 16);
  EXPECT_TRUE(m.tie_embeddings);
  EXPECT_THROW(ModelConfig::from_json(Json::parse(R"({"d_model": 256, "n_layer": 8})")), std::invalid_argument);
  EXPECT_THROW(ModelConfig::from_json(Json::parse(
                   R"({"d_model": 256, "n_layer": 8, "vocab_size": 16, "ssm_cfg": {"layer": "Mamba2"}})")),
               std::invalid_argument);
  EXPECT_THROW(ModelConfig::from_json(Json::parse(
                   R"({"d_model": 256, "n_layer": 8, "vocab_size": 16, "ssm_cfg": {"d_state": "x"}})")),
               std::invalid_argument);
}

TEST(ModelConfig, ParameterCountMatchesTheModel) {
  CpuContext ctx(1);
  for (bool tied : {true, false}) {
    ModelConfig c = test::small_config(24, 2);
    c.tie_embeddings = tied;
    MambaModel model(ctx, c);
    EXPECT_EQ(model.params().parameter_count(), c.parameter_count());
    EXPECT_EQ(model.params().find("lm_head.weight") >= 0, !tied);
  }
}

TEST(ModelConfig, ShippedConfigsLoad) {
  const auto dir = test::source_dir() / "configs";
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".ini") continue;
    SCOPED_TRACE(entry.path().string());
    ModelConfig c;
    ASSERT_NO_THROW(c = ModelConfig::from_ini(entry.path().string()));
    EXPECT_NO_THROW(c.validate());
    ++n;
  }
  EXPECT_GE(n, 4);
  // The PEERS.md models: d256 x 8 has 3.5 M parameters, d512 x 16 27.1 M.
  const ModelConfig ref = ModelConfig::from_ini((dir / "d256x8.ini").string());
  EXPECT_EQ(ref.rank(), 16);
  EXPECT_NEAR(static_cast<double>(ref.parameter_count()), 3.5e6, 0.05e6);
  const ModelConfig big = ModelConfig::from_ini((dir / "d512x16.ini").string());
  EXPECT_NEAR(static_cast<double>(big.parameter_count()), 27.1e6, 0.05e6);
}

}  // namespace
}  // namespace gm
