// Joining the per-shard outputs of a sharded batch job (`genomamba merge`). Inputs are
// the shard files in any order; they must be all N shards of one job (same command
// without --shard, same checkpoint), and are joined in shard-index order, which is
// region (or contig) order. The result is written under a temporary name and renamed.
#pragma once

#include <string>
#include <vector>

namespace gm {

// HDF5 embedding shards (pipelines/embed.*).
void merge_embedding_shards(const std::vector<std::string>& shards, const std::string& output);

// VCF/BCF score shards (pipelines/score.*); output_type as bcftools -O: v, z, u, b;
// write_index: also write the index (-W).
void merge_vcf_shards(const std::vector<std::string>& shards, const std::string& output, char output_type,
                      bool write_index);

}  // namespace gm
