// Full-context scoring: each strand streamed from its start on a fixed chunk grid (see
// score_engine.h). Strands that are still needed run as the rows of one batch; a strand
// that is no longer needed is dropped (its row removed from the state). Forward-strand LLR
// alone streams one row and takes its jobs chunk by chunk from an incremental source.
#include <algorithm>
#include <memory>
#include <stdexcept>

#include "mamba/batch.h"
#include "mamba/ops.h"
#include "pipelines/score_branch.h"
#include "pipelines/score_engine.h"

namespace gm {

namespace {

struct StrandStream {
  Strand strand = Strand::Forward;
  std::vector<StrandJob*> llr_jobs;  // sorted by pos
  // Branch jobs by the grid chunk whose start state they need (sorted by chunk).
  std::vector<std::pair<int64_t, StrandJob*>> branch_jobs;
  int64_t chunks_needed = 0;  // chunks [0, chunks_needed) must run
  size_t next_llr = 0, next_branch = 0;
};

// A copy of row `row` of `state` as a one-row state.
std::shared_ptr<StreamState> snapshot_row(Context& ctx, const MambaModel& model, const StreamState& state,
                                          int64_t row) {
  auto snap = std::make_shared<StreamState>(model.new_stream_state(ctx, 1));
  for (size_t l = 0; l < state.conv.size(); ++l) {
    ops::copy(ctx, state.conv[l].narrow(0, row, 1), snap->conv[l]);
    ops::copy(ctx, state.ssm[l].narrow(0, row, 1), snap->ssm[l]);
  }
  return snap;
}

// The state of the rows listed in `keep`, in that order.
StreamState select_rows(Context& ctx, const MambaModel& model, const StreamState& state,
                        const std::vector<int64_t>& keep) {
  StreamState out = model.new_stream_state(ctx, static_cast<int64_t>(keep.size()));
  for (size_t l = 0; l < state.conv.size(); ++l) {
    for (size_t r = 0; r < keep.size(); ++r) {
      Tensor conv = out.conv[l].narrow(0, static_cast<int64_t>(r), 1);
      Tensor ssm = out.ssm[l].narrow(0, static_cast<int64_t>(r), 1);
      ops::copy(ctx, state.conv[l].narrow(0, keep[r], 1), conv);
      ops::copy(ctx, state.ssm[l].narrow(0, keep[r], 1), ssm);
    }
  }
  return out;
}

}  // namespace

void JobListSource::take_before(int64_t forward_pos, std::vector<StrandJob*>& out) {
  if (forward_pos != kAllPositions) throw std::logic_error("a job list is taken whole");
  if (taken_) return;
  out.insert(out.end(), jobs_.begin(), jobs_.end());
  taken_ = true;
}

void ScoreEngine::score_full(const ContigTokens& seq, const std::vector<StrandJob*>& jobs,
                             const std::function<void(double)>& on_chunk) {
  JobListSource source(jobs);
  score_full(seq, source, on_chunk);
}

void ScoreEngine::read_llr(const Tensor& logits, int64_t rows, int64_t len,
                           const std::vector<std::pair<int64_t, int64_t>>& where,
                           const std::vector<StrandJob*>& readers) {
  // Only the logits rows the LLR jobs read (one per job, at pos - 1) come back to the
  // host, gathered where the model ran: the whole [rows * len, vocab] would be 64 MB per
  // million tokens.
  const int64_t vocab = model_.config().vocab;
  const auto S = static_cast<int64_t>(readers.size());
  std::vector<int32_t> spans;
  spans.reserve(static_cast<size_t>(3 * S));
  for (const auto& [row, col] : where)
    spans.insert(spans.end(), {static_cast<int32_t>(row), static_cast<int32_t>(col), static_cast<int32_t>(col + 1)});
  Tensor picked = ctx_.empty({S, vocab}, DType::F32);
  ops::span_reduce(ctx_, logits.reshape({rows, len, vocab}), upload_i32(ctx_, spans, {S, 3}), false, picked);
  std::vector<float> host_logits(static_cast<size_t>(S * vocab));
  Tensor host = Tensor::wrap(host_logits.data(), {S, vocab}, DType::F32, Device::cpu());
  ops::copy(ctx_, picked, host);
  for (int64_t i = 0; i < S; ++i) {
    const float* l = host_logits.data() + i * vocab;
    StrandJob& job = *readers[static_cast<size_t>(i)];
    job.llr_value = static_cast<double>(l[job.alt[0]]) - l[job.ref[0]];
  }
}

void ScoreEngine::stream_forward_llr(const ContigTokens& seq, StrandJobSource& source,
                                     const std::function<void(double)>& on_chunk) {
  const int64_t C = options_.chunk;
  const int64_t length = seq.contig_length();
  StreamState state = model_.new_stream_state(ctx_, 1);
  std::vector<StrandJob*> taken, readers;
  std::vector<std::pair<int64_t, int64_t>> where;
  std::vector<uint8_t> tokens;
  size_t next = 0;  // first taken job not read yet
  for (int64_t beg = 0; beg < length; beg += C) {
    const int64_t len = std::min(C, length - beg);
    // A job at pos reads the logits at pos - 1: this chunk serves pos <= beg + len.
    source.take_before(beg + len + 1, taken);
    readers.clear();
    where.clear();
    for (; next < taken.size(); ++next) {
      StrandJob* job = taken[next];
      if (job->strand != Strand::Forward || job->dll || job->emb)
        throw std::logic_error("an incremental job source holds a job that is not a forward-strand LLR");
      if (!job->llr) continue;
      readers.push_back(job);
      where.emplace_back(0, job->pos - 1 - beg);
    }
    if (readers.empty() && source.exhausted()) break;  // nothing later reads this chunk or its state
    tokens.resize(static_cast<size_t>(len));
    seq.strand_slice(Strand::Forward, beg, beg + len, tokens.data());
    ForwardRequest req;
    req.tokens = upload_u8(ctx_, tokens, {1, len});
    req.state = &state;
    req.want_logits = !readers.empty();
    ForwardOutput out = model_.forward(ctx_, req);
    tokens_run_ += len;
    if (!readers.empty()) read_llr(out.logits, 1, len, where, readers);
    source.final_before(beg + len + 1);
    if (on_chunk) on_chunk(static_cast<double>(beg + len) / static_cast<double>(length));
  }
}

void ScoreEngine::score_full(const ContigTokens& seq, StrandJobSource& source,
                             const std::function<void(double)>& on_chunk) {
  if (seq.beg() != 0 || seq.end() != seq.contig_length())
    throw std::logic_error("full-context scoring needs the whole contig");
  if (source.incremental()) {
    stream_forward_llr(seq, source, on_chunk);
    return;
  }
  std::vector<StrandJob*> jobs;
  source.take_before(kAllPositions, jobs);
  const ScoreSelection& sel = options_.scores;
  const int64_t C = options_.chunk;
  const int64_t length = seq.contig_length();
  BranchConfig bc;
  bc.dll = sel.dll;
  bc.emb = sel.emb;
  bc.llr = false;  // LLR comes from the stream itself
  bc.layer = options_.layer;
  bc.max_rows = std::max<int64_t>(2, options_.batch_rows);
  bc.max_tokens = options_.max_tokens;
  BranchRunner runner(ctx_, model_, bc);

  std::vector<StrandStream> streams(2);
  streams[0].strand = Strand::Forward;
  streams[1].strand = Strand::Reverse;
  for (StrandJob* job : jobs) {
    StrandStream& s = streams[job->strand == Strand::Forward ? 0 : 1];
    if (sel.llr && job->llr) {
      s.llr_jobs.push_back(job);
      s.chunks_needed = std::max(s.chunks_needed, (job->pos - 1) / C + 1);  // logits at pos - 1
    }
    if ((sel.dll && job->dll) || (sel.emb && job->emb)) {
      const int64_t need = std::max<int64_t>(0, job->pos - bases_needed_before(*job, bc));
      const int64_t chunk = need / C;  // rows start at grid point chunk * C
      s.branch_jobs.emplace_back(chunk, job);
      s.chunks_needed = std::max(s.chunks_needed, chunk);
    }
  }
  for (auto& s : streams) {
    std::sort(s.llr_jobs.begin(), s.llr_jobs.end(), [](auto* a, auto* b) { return a->pos < b->pos; });
    std::stable_sort(s.branch_jobs.begin(), s.branch_jobs.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
  }
  const int64_t total_chunks = std::max(streams[0].chunks_needed, streams[1].chunks_needed);

  std::vector<int> rows_of;  // stream index of each row of `state`
  for (int s = 0; s < 2; ++s) {
    if (streams[static_cast<size_t>(s)].chunks_needed > 0) rows_of.push_back(s);
  }
  StreamState state = model_.new_stream_state(ctx_, static_cast<int64_t>(std::max<size_t>(1, rows_of.size())));
  std::vector<uint8_t> tokens;

  for (int64_t k = 0; k <= total_chunks; ++k) {
    // Branch jobs that start at grid point k * C take a copy of the state before chunk k.
    for (int s = 0; s < 2; ++s) {
      StrandStream& st = streams[static_cast<size_t>(s)];
      std::shared_ptr<StreamState> snap;
      while (st.next_branch < st.branch_jobs.size() && st.branch_jobs[st.next_branch].first == k) {
        BranchStart bs;
        bs.start = k * C;
        if (k > 0) {
          if (!snap) {
            const auto row = std::find(rows_of.begin(), rows_of.end(), s) - rows_of.begin();
            snap = snapshot_row(ctx_, model_, state, row);
          }
          bs.state = snap;
        }
        runner.add(st.branch_jobs[st.next_branch].second, seq, std::move(bs));
        ++st.next_branch;
      }
    }
    if (k == total_chunks) break;
    // Drop the strands that are finished.
    std::vector<int64_t> keep;
    std::vector<int> kept_streams;
    for (size_t r = 0; r < rows_of.size(); ++r) {
      if (streams[static_cast<size_t>(rows_of[r])].chunks_needed > k) {
        keep.push_back(static_cast<int64_t>(r));
        kept_streams.push_back(rows_of[r]);
      }
    }
    if (kept_streams.size() != rows_of.size()) {
      state = select_rows(ctx_, model_, state, keep);
      rows_of = kept_streams;
    }
    const int64_t rows = static_cast<int64_t>(rows_of.size());
    const int64_t beg = k * C, len = std::min(C, length - beg);
    tokens.resize(static_cast<size_t>(rows * len));
    bool want_logits = false;
    for (int64_t r = 0; r < rows; ++r) {
      const StrandStream& st = streams[static_cast<size_t>(rows_of[static_cast<size_t>(r)])];
      seq.strand_slice(st.strand, beg, beg + len, tokens.data() + r * len);
      if (st.next_llr < st.llr_jobs.size() && st.llr_jobs[st.next_llr]->pos - 1 < beg + len) want_logits = true;
    }
    ForwardRequest req;
    req.tokens = upload_u8(ctx_, tokens, {rows, len});
    req.state = &state;
    req.want_logits = want_logits;
    ForwardOutput out = model_.forward(ctx_, req);
    tokens_run_ += rows * len;
    if (want_logits) {
      std::vector<std::pair<int64_t, int64_t>> where;
      std::vector<StrandJob*> readers;
      for (int64_t r = 0; r < rows; ++r) {
        StrandStream& st = streams[static_cast<size_t>(rows_of[static_cast<size_t>(r)])];
        while (st.next_llr < st.llr_jobs.size() && st.llr_jobs[st.next_llr]->pos - 1 < beg + len) {
          StrandJob* job = st.llr_jobs[st.next_llr++];
          where.emplace_back(r, job->pos - 1 - beg);
          readers.push_back(job);
        }
      }
      read_llr(out.logits, rows, len, where, readers);
    }
    if (on_chunk) on_chunk(static_cast<double>(k + 1) / static_cast<double>(total_chunks));
  }
  runner.flush();
  tokens_run_ += runner.tokens_run();
}

}  // namespace gm
