// ModelConfig: the hyper-parameters of a Mamba-1 language model (DESIGN.md section 3),
// read from the [model] section of an .ini file or from the JSON stored in checkpoints.
//
// Conventions
// - d_inner = expand * d_model; dt_rank 0 means "auto" = ceil(d_model / 16), kept as 0
//   by from_ini() (so overriding d_model afterwards still gets the automatic rank) and
//   written as its value by to_json(). Equality compares rank(), not the raw field.
// - The JSON form uses mamba_ssm's MambaConfig keys (d_model, n_layer, vocab_size,
//   ssm_cfg{...}, tie_embeddings, ...) so that a checkpoint's config reads like a
//   mamba_ssm config.json; genomamba-only fields sit under the key "genomamba"
//   (drop it to hand the config to mamba_ssm).
// - Variants reserved for later (bidirectional, rc_equivariant, objective = mlm,
//   proj_bias) are parsed and stored but validate() rejects them as "not supported yet".
#pragma once

#include <cstdint>
#include <string>

#include "mamba/json.h"

namespace gm {

enum class Objective : uint8_t { Causal, MaskedLM };

const char* objective_name(Objective o);  // "causal" | "mlm"
Objective parse_objective(const std::string& s);

struct ModelConfig {
  int64_t d_model = 256;
  int64_t n_layer = 8;
  int64_t d_state = 16;
  int64_t expand = 2;
  int64_t d_conv = 4;
  int64_t dt_rank = 0;  // 0 = auto
  int64_t vocab = 16;
  bool tie_embeddings = true;
  double rms_eps = 1e-5;
  bool conv_bias = true;
  bool proj_bias = false;  // in_proj / out_proj bias (mamba_ssm "bias"); not supported yet
  double dt_min = 1e-3;
  double dt_max = 1e-1;
  double dt_init_floor = 1e-4;
  bool bidirectional = false;   // not supported yet
  bool rc_equivariant = false;  // not supported yet
  Objective objective = Objective::Causal;

  int64_t d_inner() const { return expand * d_model; }
  int64_t rank() const { return dt_rank > 0 ? dt_rank : (d_model + 15) / 16; }
  // A copy with dt_rank resolved.
  ModelConfig resolved() const;
  // Throws std::invalid_argument naming the first bad field.
  void validate() const;
  // Total number of f32 parameters (the tied LM head counted once).
  int64_t parameter_count() const;

  Json to_json() const;
  // Accepts mamba_ssm config.json files too: only d_model, n_layer and vocab_size are
  // required, absent fields take mamba_ssm's defaults (which are ModelConfig's), dt_rank
  // may be "auto". Throws std::invalid_argument naming a missing/ill-typed field.
  static ModelConfig from_json(const Json& j);
  // The [model] section of an .ini file ("key = value", '#' or ';' comments). Other
  // sections are ignored; an unknown key inside [model] is an error naming file:line.
  static ModelConfig from_ini(const std::string& path);
  static ModelConfig from_ini_text(const std::string& text, const std::string& source_name);

  // "d256 x 8 layers, d_state 16, ..." for logs and `genomamba info`.
  std::string summary() const;

  bool operator==(const ModelConfig& o) const;
};

}  // namespace gm
