// RegionEmbedder: passes, lanes, chunked forwards and pooling (see embed_engine.h).
#include "pipelines/embed_engine.h"

#include <algorithm>
#include <limits>
#include <set>
#include <stdexcept>

#include "genomics/text.h"
#include "genomics/tokenizer.h"
#include "mamba/batch.h"
#include "mamba/ops.h"

#ifdef GENOMAMBA_HAVE_CUDA
#include <cuda_runtime.h>
#endif

namespace gm {

namespace {

// One read of a region on one strand. Pass positions 0..length()-1 are in reading
// order; the first `lead` are flank, the rest the region's bases (pooled positions q).
struct Pass {
  size_t region = 0;     // block-local region index
  bool reverse = false;  // reads the reverse complement of [read_beg, read_end)
  bool aligned = true;   // reading order is the region's strand order
  bool counts_n = false; // the pass that counts the region's N bases
  int64_t read_beg = 0, read_end = 0, lead = 0;
  int64_t length() const { return read_end - read_beg; }
  int64_t pooled() const { return length() - lead; }
};

std::vector<Pass> plan_passes(const EmbedRegion& r, size_t local, int64_t contig_length, const EngineOptions& opt) {
  std::vector<bool> orientations;
  switch (opt.strand) {
    case StrandMode::Fwd: orientations = {r.minus()}; break;
    case StrandMode::Rc: orientations = {!r.minus()}; break;
    case StrandMode::Both: orientations = {r.minus(), !r.minus()}; break;
  }
  std::vector<Pass> out;
  for (size_t k = 0; k < orientations.size(); ++k) {
    Pass p;
    p.region = local;
    p.reverse = orientations[k];
    p.aligned = p.reverse == r.minus();
    p.counts_n = k == 0;
    if (!p.reverse) {
      p.lead = std::min(opt.flank, r.beg);
      p.read_beg = r.beg - p.lead;
      p.read_end = r.end;
    } else {
      p.lead = std::min(opt.flank, contig_length - r.end);
      p.read_beg = r.beg;
      p.read_end = r.end + p.lead;
    }
    out.push_back(p);
  }
  return out;
}

// Forward-strand tokens of the block's regions: short spans are fetched once, when first
// read (so fetching overlaps the device's work on the previous step), and shared by both
// passes; long ones chunk by chunk.
class TokenSource {
 public:
  TokenSource(const FastaReader& fasta, const std::vector<EmbedRegion>& regions, size_t first, size_t count)
      : fasta_(fasta), regions_(regions), first_(first), cache_(count) {}

  // Keeps [beg, end) of region `local` once it is first read.
  void cache(size_t local, int64_t beg, int64_t end) {
    Cached& c = cache_[local];
    c.beg = beg;
    c.end = end;
    c.wanted = true;
  }

  // Tokens of pass positions [a, b) into dst.
  void pass_tokens(const Pass& p, int64_t a, int64_t b, uint8_t* dst) {
    const int64_t n = b - a;
    if (!p.reverse) {
      forward(p.region, p.read_beg + a, p.read_beg + b, dst);
      return;
    }
    forward(p.region, p.read_end - b, p.read_end - a, dst);
    flags_.resize(static_cast<size_t>(n));
    reverse_complement(dst, flags_.data(), static_cast<size_t>(n));
  }

 private:
  struct Cached {
    int64_t beg = 0, end = 0;
    bool wanted = false;
    std::vector<uint8_t> tokens;
  };

  void forward(size_t local, int64_t beg, int64_t end, uint8_t* dst) {
    Cached& c = cache_[local];
    if (c.wanted && c.tokens.empty()) {
      c.tokens.resize(static_cast<size_t>(c.end - c.beg));
      read(local, c.beg, c.end, c.tokens.data());
    }
    if (c.wanted && beg >= c.beg && end <= c.end) {
      std::copy(c.tokens.begin() + (beg - c.beg), c.tokens.begin() + (end - c.beg), dst);
      return;
    }
    read(local, beg, end, dst);
  }

  void read(size_t local, int64_t beg, int64_t end, uint8_t* dst) {
    const EmbedRegion& r = regions_[first_ + local];
    const FetchedSequence seq = fasta_.fetch(r.contig_id, beg, end);
    if (seq.size() != end - beg)
      throw std::runtime_error(fasta_.path() + ": short read of " + r.contig + ":" + std::to_string(beg + 1) + "-" +
                               std::to_string(end));
    flags_.resize(static_cast<size_t>(end - beg));
    tokenize(seq.view(), dst, flags_.data(), r.contig, beg);
  }

  const FastaReader& fasta_;
  const std::vector<EmbedRegion>& regions_;
  size_t first_;
  std::vector<Cached> cache_;
  std::vector<uint8_t> flags_;
};

struct Lane {
  std::vector<size_t> passes;
  int64_t load = 0;
  size_t cursor = 0;  // the pass being read
  int64_t pos = 0;    // next position of that pass
};

// A run of one pass's positions [pos0, pos0 + take) at columns [col, col + take) of a lane.
struct Segment {
  size_t lane = 0, pass = 0;
  int64_t pos0 = 0, col = 0, take = 0;
  bool starts = false, ends = false;
};

// Pooled modes: positions [q0, q1) of the pass of segments[segment], reduced on the
// model's device from consecutive columns of the segment's lane.
struct Piece {
  size_t segment = 0;
  int64_t q0 = 0, q1 = 0;
};

// Positions one reduced piece spans at most: bounds each device thread's sequential f32
// sum; the pieces of a pass are added on the host in double.
constexpr int64_t kMaxPieceRows = 4096;

// One forward of the lanes: its tokens, what they are, and (once launched) its outputs.
struct Step {
  int64_t col0 = 0, n = 0;
  std::vector<uint8_t> tokens, seq_start;
  bool resets = false;
  std::vector<Segment> segments;
  std::vector<Piece> pieces;         // pooled modes
  std::vector<int32_t> spans;        // pooled modes: (lane, first column, end column) per piece
  ForwardOutput forward;             // keeps the captures alive until consumed
  std::vector<Tensor> reduced;       // pooled modes, per layer slot: [pieces, d] on the device
  std::vector<const float*> values;  // per layer slot, on the host: [pieces, d] pooled, [rows, n, d] per token
};

// Host buffer for captures copied from a device, page-locked when CUDA is built in so
// that the device-to-host copies run at full bus speed (plain memory if pinning fails).
class HostStaging {
 public:
  explicit HostStaging(bool pin) : pin_(pin) {}
  ~HostStaging() { unpin(); }
  HostStaging(HostStaging&& o) noexcept : pin_(o.pin_), pinned_(o.pinned_), data_(std::move(o.data_)) { o.pinned_ = false; }
  HostStaging(const HostStaging&) = delete;
  HostStaging& operator=(const HostStaging&) = delete;
  HostStaging& operator=(HostStaging&&) = delete;

  float* get(size_t n) {
    if (n > data_.size()) {
      unpin();
      data_.assign(n, 0.f);
      pin();
    }
    return data_.data();
  }

 private:
  void pin() {
#ifdef GENOMAMBA_HAVE_CUDA
    if (pin_ && !data_.empty()) {
      pinned_ = cudaHostRegister(data_.data(), data_.size() * sizeof(float), cudaHostRegisterDefault) == cudaSuccess;
      if (!pinned_) cudaGetLastError();  // clear the error: unpinned memory works, only slower
    }
#endif
  }
  void unpin() {
#ifdef GENOMAMBA_HAVE_CUDA
    if (pinned_) cudaHostUnregister(data_.data());
#endif
    pinned_ = false;
  }
  bool pin_ = false, pinned_ = false;
  std::vector<float> data_;
};

}  // namespace

RegionEmbedder::RegionEmbedder(Context& ctx, MambaModel& model, const FastaReader& fasta, EngineOptions options)
    : ctx_(ctx), model_(model), fasta_(fasta), opt_(std::move(options)) {
  const int n_layer = static_cast<int>(model_.config().n_layer);
  if (opt_.layers.empty()) throw std::invalid_argument("no layer requested");
  for (int k : opt_.layers)
    if (k < 0 || k > n_layer)
      throw std::invalid_argument("--layer " + std::to_string(k) + " is outside [0, " + std::to_string(n_layer) +
                                  "] (the model has " + std::to_string(n_layer) + " layers; " +
                                  std::to_string(n_layer) + " = the last, before the final norm)");
  if (std::set<int>(opt_.layers.begin(), opt_.layers.end()).size() != opt_.layers.size())
    throw std::invalid_argument("--layer lists a layer twice");
  if (opt_.chunk < 1) throw std::invalid_argument("--chunk must be >= 1");
  if (opt_.rows < 1) throw std::invalid_argument("--batch-size must be >= 1");
  if (opt_.flank < 0) throw std::invalid_argument("--flank must be >= 0");
  // Pooled runs are addressed by 32-bit columns of a step (span_reduce's i32 spans).
  if (opt_.chunk > std::numeric_limits<int32_t>::max() / opt_.rows)
    throw std::invalid_argument("--chunk x --batch-size must stay below 2^31 tokens per forward");
}

int64_t RegionEmbedder::model_tokens(const EmbedRegion& region) const {
  int64_t n = 0;
  const int64_t length = fasta_.contigs()[static_cast<size_t>(region.contig_id)].length;
  for (const Pass& p : plan_passes(region, 0, length, opt_)) n += p.length();
  return n;
}

void RegionEmbedder::run(const std::vector<EmbedRegion>& regions,
                         const std::function<void(const EmbeddedBlock&)>& sink,
                         const std::function<void(const EmbedProgress&)>& progress) {
  const int64_t value_bytes = dim() * static_cast<int64_t>(sizeof(float)) * static_cast<int64_t>(opt_.layers.size());
  EmbedProgress state;
  state.regions_total = static_cast<int64_t>(regions.size());
  for (const auto& r : regions) {
    if (r.contig_id < 0 || static_cast<size_t>(r.contig_id) >= fasta_.contigs().size() || r.beg < 0 ||
        r.end <= r.beg || r.end > fasta_.contigs()[static_cast<size_t>(r.contig_id)].length)
      throw std::invalid_argument("region " + r.contig + ":" + std::to_string(r.beg) + "-" + std::to_string(r.end) +
                                  " is empty or outside the reference");
    if (opt_.pool == Pool::None && r.length() * value_bytes > opt_.max_region_output_bytes)
      throw std::invalid_argument("region " + r.contig + ":" + std::to_string(r.beg + 1) + "-" +
                                  std::to_string(r.end) + " has " + with_commas(r.length()) +
                                  " bases: its per-token output (--pool none) would not fit in memory; "
                                  "use a pooling mode or tile it with --window");
    state.tokens_total += model_tokens(r);
  }
  size_t i = 0;
  while (i < regions.size()) {
    size_t j = i;
    int64_t tokens = 0, bytes = 0;
    while (j < regions.size() && static_cast<int64_t>(j - i) < opt_.block_regions) {
      const int64_t t = model_tokens(regions[j]);
      const int64_t b = opt_.pool == Pool::None ? regions[j].length() * value_bytes : 0;
      if (j > i && (tokens + t > opt_.block_tokens || bytes + b > opt_.block_output_bytes)) break;
      tokens += t;
      bytes += b;
      ++j;
    }
    run_block(regions, i, j, sink, progress, state);
    i = j;
  }
}

void RegionEmbedder::run_block(const std::vector<EmbedRegion>& regions, size_t first, size_t last,
                               const std::function<void(const EmbeddedBlock&)>& sink,
                               const std::function<void(const EmbedProgress&)>& progress, EmbedProgress& state) {
  const int64_t d = dim();
  const size_t slots = opt_.layers.size();
  const bool per_token = opt_.pool == Pool::None;
  const size_t count = last - first;

  std::vector<Pass> passes;
  std::vector<int> passes_left(count, 0);
  TokenSource source(fasta_, regions, first, count);
  for (size_t i = 0; i < count; ++i) {
    const EmbedRegion& r = regions[first + i];
    const auto planned = plan_passes(r, i, fasta_.contigs()[static_cast<size_t>(r.contig_id)].length, opt_);
    int64_t span_beg = r.beg, span_end = r.end;
    for (const Pass& p : planned) {
      span_beg = std::min(span_beg, p.read_beg);
      span_end = std::max(span_end, p.read_end);
    }
    if (span_end - span_beg <= opt_.chunk) source.cache(i, span_beg, span_end);
    passes_left[i] = static_cast<int>(planned.size());
    passes.insert(passes.end(), planned.begin(), planned.end());
  }
  const float weight = 1.f / static_cast<float>(passes.size() / count);

  EmbeddedBlock out;
  out.first = first;
  out.count = count;
  out.n_bases.assign(count, 0);
  out.values.resize(slots);
  if (per_token) {
    out.offsets.assign(count + 1, 0);
    for (size_t i = 0; i < count; ++i) out.offsets[i + 1] = out.offsets[i] + regions[first + i].length();
  }
  const int64_t out_rows = per_token ? out.offsets.back() : static_cast<int64_t>(count);
  for (auto& v : out.values) v.assign(static_cast<size_t>(out_rows * d), 0.f);

  // Longest pass first, each to the least loaded lane (ties: the lowest lane).
  std::vector<size_t> order(passes.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return passes[a].length() > passes[b].length(); });
  std::vector<Lane> lanes(std::min<size_t>(static_cast<size_t>(opt_.rows), passes.size()));
  for (size_t idx : order) {
    auto lane = std::min_element(lanes.begin(), lanes.end(), [](const Lane& a, const Lane& b) { return a.load < b.load; });
    lane->passes.push_back(idx);
    lane->load += passes[idx].length();
  }
  const int64_t rows = static_cast<int64_t>(lanes.size());
  int64_t longest = 0;
  for (const Lane& l : lanes) longest = std::max(longest, l.load);
  // rows x chunk tokens per forward: with fewer lanes than rows (a few long regions, e.g.
  // whole chromosomes) each lane takes longer steps, which keeps a GPU busy.
  const int64_t columns = std::min(opt_.chunk * (opt_.rows / rows), longest);
  const bool streaming = longest > columns;
  StreamState stream;
  if (streaming) stream = model_.new_stream_state(ctx_, rows);

  std::vector<PassPooler> poolers;
  if (!per_token)
    for (size_t i = 0; i < lanes.size() * slots; ++i) poolers.emplace_back(opt_.pool, d);
  // Two sets of host buffers, so that one step is pooled while the next one runs.
  const bool on_host = ctx_.device().is_cpu();
  std::vector<HostStaging> staging;
  for (size_t i = 0; i < 2 * slots; ++i) staging.emplace_back(!on_host);

  // Host side of one step: the lanes' next `n` columns of tokens.
  auto fill = [&](int64_t col0, Step& step) {
    step.col0 = col0;
    step.n = std::min(columns, longest - col0);
    const int64_t n = step.n;
    step.tokens.assign(static_cast<size_t>(rows * n), token::kPad);
    step.seq_start.assign(static_cast<size_t>(rows * n), 0);
    step.segments.clear();
    step.pieces.clear();
    step.spans.clear();
    step.resets = false;
    for (size_t l = 0; l < lanes.size(); ++l) {
      Lane& lane = lanes[l];
      int64_t col = 0;
      while (col < n && lane.cursor < lane.passes.size()) {
        const size_t pi = lane.passes[lane.cursor];
        const Pass& p = passes[pi];
        const int64_t take = std::min(p.length() - lane.pos, n - col);
        const size_t at = static_cast<size_t>(static_cast<int64_t>(l) * n + col);
        Segment seg{l, pi, lane.pos, col, take, lane.pos == 0, lane.pos + take == p.length()};
        if (seg.starts) {
          step.seq_start[at] = 1;
          step.resets = step.resets || col0 + col > 0;  // column 0 of the first step starts fresh anyway
        }
        uint8_t* dst = step.tokens.data() + at;
        source.pass_tokens(p, lane.pos, lane.pos + take, dst);
        if (p.counts_n) {
          for (int64_t t = std::max(lane.pos, p.lead); t < lane.pos + take; ++t)
            out.n_bases[p.region] += dst[t - lane.pos] == token::kN;
        }
        if (!per_token) {
          // The segment's positions that its pass's pooling reads, in pieces.
          const auto [w0, w1] = pool_wanted_range(opt_.pool, p.pooled());
          const int64_t q_lo = std::max(lane.pos - p.lead, w0), q_hi = std::min(lane.pos + take - p.lead, w1);
          for (int64_t q = q_lo; q < q_hi; q += kMaxPieceRows) {
            const int64_t q_end = std::min(q_hi, q + kMaxPieceRows);
            const int64_t first = col + (q + p.lead - lane.pos);
            step.pieces.push_back({step.segments.size(), q, q_end});
            step.spans.insert(step.spans.end(), {static_cast<int32_t>(l), static_cast<int32_t>(first),
                                                 static_cast<int32_t>(first + (q_end - q))});
          }
        }
        step.segments.push_back(seg);
        lane.pos += take;
        col += take;
        if (lane.pos == p.length()) {
          ++lane.cursor;
          lane.pos = 0;
        }
      }
    }
  };

  // Queues the step's forward (and, on a device, the copy of its captures to the host).
  auto launch = [&](Step& step, size_t parity) {
    ForwardRequest req;
    req.tokens = upload_u8(ctx_, step.tokens, {rows, step.n});
    if (step.resets) req.seq_start = upload_u8(ctx_, step.seq_start, {rows, step.n});
    req.state = streaming ? &stream : nullptr;
    req.want_logits = false;
    req.capture = opt_.layers;
    step.forward = model_.forward(ctx_, req);
    step.values.assign(slots, nullptr);
    if (!per_token) {
      // Pooled modes reduce the wanted positions where the model ran and bring back one
      // row per piece instead of every token's values.
      step.reduced.clear();
      const int64_t S = static_cast<int64_t>(step.pieces.size());
      if (S == 0) return;
      const Tensor spans = upload_i32(ctx_, step.spans, {S, 3});
      for (size_t k = 0; k < slots; ++k) {
        step.reduced.push_back(ctx_.empty({S, d}, DType::F32));
        ops::span_reduce(ctx_, step.forward.captured[k], spans, opt_.pool == Pool::Max, step.reduced.back());
        if (on_host) {
          step.values[k] = step.reduced.back().data<float>();
        } else {
          float* host = staging[parity * slots + k].get(static_cast<size_t>(S * d));
          Tensor dst = Tensor::wrap(host, {S, d}, DType::F32, Device::cpu());
          ops::copy(ctx_, step.reduced.back(), dst);
          step.values[k] = host;
        }
      }
      return;
    }
    for (size_t k = 0; k < slots; ++k) {
      if (on_host) {
        step.values[k] = step.forward.captured[k].data<float>();
      } else {
        float* host = staging[parity * slots + k].get(static_cast<size_t>(rows * step.n * d));
        Tensor dst = Tensor::wrap(host, {rows, step.n, d}, DType::F32, Device::cpu());
        ops::copy(ctx_, step.forward.captured[k], dst);
        step.values[k] = host;
      }
    }
  };

  // Pools (or keeps) the outputs of a finished step.
  auto consume = [&](const Step& step) {
    size_t piece = 0;
    for (size_t si = 0; si < step.segments.size(); ++si) {
      const Segment& s = step.segments[si];
      const Pass& p = passes[s.pass];
      const int64_t P = p.pooled();
      if (!per_token && s.starts)
        for (size_t k = 0; k < slots; ++k) poolers[s.lane * slots + k].begin(P);
      for (; piece < step.pieces.size() && step.pieces[piece].segment == si; ++piece)
        for (size_t k = 0; k < slots; ++k)
          poolers[s.lane * slots + k].feed_reduced(step.pieces[piece].q0, step.pieces[piece].q1,
                                                   step.values[k] + static_cast<int64_t>(piece) * d);
      if (per_token) {
        for (int64_t t = std::max(s.pos0, p.lead); t < s.pos0 + s.take; ++t) {
          const int64_t q = t - p.lead;
          const int64_t column = s.col + (t - s.pos0);
          const int64_t row = out.offsets[p.region] + (p.aligned ? q : P - 1 - q);
          for (size_t k = 0; k < slots; ++k) {
            const float* x = step.values[k] + (static_cast<int64_t>(s.lane) * step.n + column) * d;
            float* o = out.values[k].data() + row * d;
            for (int64_t j = 0; j < d; ++j) o[j] += weight * x[j];
          }
        }
      }
      state.tokens_done += s.take;
      if (!s.ends) continue;
      if (!per_token)
        for (size_t k = 0; k < slots; ++k)
          poolers[s.lane * slots + k].finish(weight, out.values[k].data() + static_cast<int64_t>(p.region) * d);
      if (--passes_left[p.region] == 0) ++state.regions_done;
    }
    if (progress) progress(state);
  };

  // fill(next) and consume(current) on the host overlap the device's work on the
  // current and next steps; on the CPU the same order simply runs in sequence.
  Step steps[2];
  size_t cur = 0;
  fill(0, steps[cur]);
  launch(steps[cur], cur);
  for (;;) {
    const int64_t next_col = steps[cur].col0 + steps[cur].n;
    const bool more = next_col < longest;
    if (more) fill(next_col, steps[1 - cur]);
    ctx_.synchronize();
    if (more) launch(steps[1 - cur], 1 - cur);
    consume(steps[cur]);
    steps[cur].forward = ForwardOutput();
    steps[cur].reduced.clear();
    if (!more) break;
    cur = 1 - cur;
  }
  sink(out);
}

}  // namespace gm
