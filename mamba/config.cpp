// ModelConfig parsing (ini, JSON), validation and the mamba_ssm-style JSON form.
#include "mamba/config.h"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <stdexcept>

namespace gm {

const char* objective_name(Objective o) { return o == Objective::MaskedLM ? "mlm" : "causal"; }

Objective parse_objective(const std::string& s) {
  if (s == "causal") return Objective::Causal;
  if (s == "mlm") return Objective::MaskedLM;
  throw std::invalid_argument("unknown objective '" + s + "' (expected causal or mlm)");
}

bool ModelConfig::operator==(const ModelConfig& o) const {
  return d_model == o.d_model && n_layer == o.n_layer && d_state == o.d_state && expand == o.expand &&
         d_conv == o.d_conv && rank() == o.rank() && vocab == o.vocab && tie_embeddings == o.tie_embeddings &&
         rms_eps == o.rms_eps && conv_bias == o.conv_bias && proj_bias == o.proj_bias && dt_min == o.dt_min &&
         dt_max == o.dt_max && dt_init_floor == o.dt_init_floor && bidirectional == o.bidirectional &&
         rc_equivariant == o.rc_equivariant && objective == o.objective;
}

ModelConfig ModelConfig::resolved() const {
  ModelConfig c = *this;
  c.dt_rank = rank();
  return c;
}

void ModelConfig::validate() const {
  auto require = [](bool ok, const std::string& what) {
    if (!ok) throw std::invalid_argument("model config: " + what);
  };
  require(d_model > 0, "d_model must be positive");
  require(n_layer > 0, "n_layer must be positive");
  require(d_state > 0, "d_state must be positive");
  require(expand > 0, "expand must be positive");
  require(d_conv >= 1, "d_conv must be at least 1");
  require(dt_rank >= 0, "dt_rank must be positive (or auto)");
  // Token ids go up to N = 11 (DESIGN.md section 2) and travel as u8.
  require(vocab >= 12 && vocab <= 256, "vocab must be in [12, 256] (token ids 0..11 are used)");
  require(rms_eps > 0 && std::isfinite(rms_eps), "rms_eps must be positive");
  require(dt_min > 0 && dt_max >= dt_min, "need 0 < dt_min <= dt_max");
  require(dt_init_floor > 0, "dt_init_floor must be positive");
  require(!proj_bias, "proj_bias = true is not supported yet");
  require(!bidirectional, "bidirectional = true is not supported yet");
  require(!rc_equivariant, "rc_equivariant = true is not supported yet");
  require(objective == Objective::Causal, "objective = mlm is not supported yet");
}

int64_t ModelConfig::parameter_count() const {
  const int64_t d = d_model, D = d_inner(), N = d_state, R = rank(), K = d_conv;
  const int64_t per_layer = d                    // norm
                            + 2 * D * d          // in_proj
                            + D * K + (conv_bias ? D : 0)  // conv1d
                            + (R + 2 * N) * D    // x_proj
                            + D * R + D          // dt_proj
                            + D * N + D          // A_log, D
                            + d * D;             // out_proj
  return vocab * d + n_layer * per_layer + d + (tie_embeddings ? 0 : vocab * d);
}

Json ModelConfig::to_json() const {
  Json ssm = Json::object();
  ssm.set("layer", "Mamba1")
      .set("d_state", d_state)
      .set("d_conv", d_conv)
      .set("expand", expand)
      .set("dt_rank", rank())
      .set("dt_min", dt_min)
      .set("dt_max", dt_max)
      .set("dt_init_floor", dt_init_floor)
      .set("conv_bias", conv_bias)
      .set("bias", proj_bias);
  Json extra = Json::object();
  extra.set("norm_epsilon", rms_eps)
      .set("bidirectional", bidirectional)
      .set("rc_equivariant", rc_equivariant)
      .set("objective", objective_name(objective));
  Json j = Json::object();
  j.set("d_model", d_model)
      .set("d_intermediate", 0)
      .set("n_layer", n_layer)
      .set("vocab_size", vocab)
      .set("ssm_cfg", std::move(ssm))
      .set("attn_layer_idx", Json::array())
      .set("attn_cfg", Json::object())
      .set("rms_norm", true)
      .set("residual_in_fp32", true)
      .set("fused_add_norm", true)
      .set("pad_vocab_size_multiple", 8)
      .set("tie_embeddings", tie_embeddings)
      .set("genomamba", std::move(extra));
  return j;
}

ModelConfig ModelConfig::from_json(const Json& j) {
  // Required keys are those mamba_ssm's MambaConfig has no default for; everything
  // else falls back to the same defaults as mamba_ssm (which ModelConfig shares).
  auto required = [](const Json& obj, const char* key) -> const Json& {
    const Json* v = obj.find(key);
    if (!v) throw std::invalid_argument(std::string("model config JSON: missing ") + key);
    return *v;
  };
  ModelConfig c;
  try {
    if (!j.is_object()) throw std::invalid_argument("model config JSON: not an object");
    c.d_model = required(j, "d_model").as_int(1, 1 << 20);
    c.n_layer = required(j, "n_layer").as_int(1, 1 << 16);
    c.vocab = required(j, "vocab_size").as_int(1, 1 << 20);
    if (const Json* v = j.find("tie_embeddings")) c.tie_embeddings = v->as_bool();
    if (const Json* v = j.find("d_intermediate"); v && v->as_int() != 0)
      throw std::invalid_argument("model config JSON: d_intermediate != 0 (MLP layers) is not supported");
    if (const Json* v = j.find("attn_layer_idx"); v && !v->as_array().empty())
      throw std::invalid_argument("model config JSON: attention layers are not supported");
    if (const Json* v = j.find("rms_norm"); v && !v->as_bool())
      throw std::invalid_argument("model config JSON: rms_norm = false (LayerNorm) is not supported");
    if (const Json* ssm = j.find("ssm_cfg")) {
      if (const Json* v = ssm->find("layer"); v && v->as_string() != "Mamba1")
        throw std::invalid_argument("model config JSON: ssm_cfg.layer '" + v->as_string() +
                                    "' is not supported (only Mamba1)");
      if (const Json* v = ssm->find("d_state")) c.d_state = v->as_int(1, 1 << 12);
      if (const Json* v = ssm->find("d_conv")) c.d_conv = v->as_int(1, 1 << 12);
      if (const Json* v = ssm->find("expand")) c.expand = v->as_int(1, 1 << 12);
      if (const Json* v = ssm->find("dt_rank"))
        c.dt_rank = v->is_string() && v->as_string() == "auto" ? 0 : v->as_int(1, 1 << 20);
      if (const Json* v = ssm->find("dt_min")) c.dt_min = v->as_number();
      if (const Json* v = ssm->find("dt_max")) c.dt_max = v->as_number();
      if (const Json* v = ssm->find("dt_init_floor")) c.dt_init_floor = v->as_number();
      if (const Json* v = ssm->find("conv_bias")) c.conv_bias = v->as_bool();
      if (const Json* v = ssm->find("bias")) c.proj_bias = v->as_bool();
    }
    if (const Json* extra = j.find("genomamba")) {
      if (const Json* v = extra->find("norm_epsilon")) c.rms_eps = v->as_number();
      if (const Json* v = extra->find("bidirectional")) c.bidirectional = v->as_bool();
      if (const Json* v = extra->find("rc_equivariant")) c.rc_equivariant = v->as_bool();
      if (const Json* v = extra->find("objective")) c.objective = parse_objective(v->as_string());
    }
  } catch (const JsonError& e) {
    throw std::invalid_argument(std::string("model config JSON: ") + e.what());
  }
  c.validate();
  return c.resolved();
}

namespace {

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return {};
  const size_t e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

int64_t parse_int(const std::string& v) {
  int64_t out = 0;
  const auto r = std::from_chars(v.data(), v.data() + v.size(), out);
  if (r.ec != std::errc() || r.ptr != v.data() + v.size()) throw std::invalid_argument("expected an integer");
  return out;
}

double parse_double(const std::string& v) {
  double out = 0;
  const auto r = std::from_chars(v.data(), v.data() + v.size(), out);
  if (r.ec != std::errc() || r.ptr != v.data() + v.size() || !std::isfinite(out))
    throw std::invalid_argument("expected a number");
  return out;
}

bool parse_bool(const std::string& v) {
  if (v == "true" || v == "1" || v == "yes" || v == "on") return true;
  if (v == "false" || v == "0" || v == "no" || v == "off") return false;
  throw std::invalid_argument("expected true or false");
}

}  // namespace

ModelConfig ModelConfig::from_ini_text(const std::string& text, const std::string& source_name) {
  ModelConfig c;
  using Setter = std::function<void(const std::string&)>;
  const std::map<std::string, Setter> setters = {
      {"d_model", [&](const std::string& v) { c.d_model = parse_int(v); }},
      {"n_layer", [&](const std::string& v) { c.n_layer = parse_int(v); }},
      {"d_state", [&](const std::string& v) { c.d_state = parse_int(v); }},
      {"expand", [&](const std::string& v) { c.expand = parse_int(v); }},
      {"d_conv", [&](const std::string& v) { c.d_conv = parse_int(v); }},
      {"dt_rank", [&](const std::string& v) { c.dt_rank = v == "auto" ? 0 : parse_int(v); }},
      {"vocab", [&](const std::string& v) { c.vocab = parse_int(v); }},
      {"tie_embeddings", [&](const std::string& v) { c.tie_embeddings = parse_bool(v); }},
      {"rms_eps", [&](const std::string& v) { c.rms_eps = parse_double(v); }},
      {"conv_bias", [&](const std::string& v) { c.conv_bias = parse_bool(v); }},
      {"proj_bias", [&](const std::string& v) { c.proj_bias = parse_bool(v); }},
      {"dt_min", [&](const std::string& v) { c.dt_min = parse_double(v); }},
      {"dt_max", [&](const std::string& v) { c.dt_max = parse_double(v); }},
      {"dt_init_floor", [&](const std::string& v) { c.dt_init_floor = parse_double(v); }},
      {"bidirectional", [&](const std::string& v) { c.bidirectional = parse_bool(v); }},
      {"rc_equivariant", [&](const std::string& v) { c.rc_equivariant = parse_bool(v); }},
      {"objective", [&](const std::string& v) { c.objective = parse_objective(v); }},
  };
  std::istringstream in(text);
  std::string line;
  std::string section;
  bool saw_model = false;
  for (int lineno = 1; std::getline(in, line); ++lineno) {
    const std::string where = source_name + ":" + std::to_string(lineno);
    const size_t comment = line.find_first_of("#;");
    line = trim(comment == std::string::npos ? line : line.substr(0, comment));
    if (line.empty()) continue;
    if (line.front() == '[') {
      if (line.back() != ']') throw std::invalid_argument(where + ": malformed section header '" + line + "'");
      section = trim(line.substr(1, line.size() - 2));
      saw_model = saw_model || section == "model";
      continue;
    }
    if (section != "model") continue;
    const size_t eq = line.find('=');
    if (eq == std::string::npos) throw std::invalid_argument(where + ": expected 'key = value', got '" + line + "'");
    const std::string key = trim(line.substr(0, eq));
    const std::string value = trim(line.substr(eq + 1));
    const auto it = setters.find(key);
    if (it == setters.end()) throw std::invalid_argument(where + ": unknown [model] key '" + key + "'");
    try {
      it->second(value);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(where + ": " + key + " = '" + value + "': " + e.what());
    }
  }
  if (!saw_model) throw std::invalid_argument(source_name + ": no [model] section");
  try {
    c.validate();
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(source_name + ": " + e.what());
  }
  return c;
}

ModelConfig ModelConfig::from_ini(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot open model config '" + path + "': " + std::strerror(errno));
  std::ostringstream ss;
  ss << f.rdbuf();
  return from_ini_text(ss.str(), path);
}

std::string ModelConfig::summary() const {
  std::ostringstream os;
  os << "d_model " << d_model << " x " << n_layer << " layers, d_inner " << d_inner() << ", d_state "
     << d_state << ", d_conv " << d_conv << ", dt_rank " << rank() << ", vocab " << vocab
     << (tie_embeddings ? ", tied LM head" : ", separate LM head") << ", " << objective_name(objective) << ", "
     << parameter_count() << " parameters";
  return os.str();
}

}  // namespace gm
