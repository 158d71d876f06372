// The `genomamba score` job (see score.h): reads records (whole file, regions or a
// shard), groups them (full context: one contig; window mode: nearby records of one
// contig), builds the strand jobs of their alleles, runs the engine and writes every
// record back with its scores and flags, in input order.
#include "pipelines/score.h"

#include <htslib/vcf.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <deque>
#include <future>
#include <limits>
#include <memory>
#include <optional>
#include <ostream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "genomics/errors.h"
#include "genomics/fasta.h"
#include "genomics/text.h"
#include "mamba/checkpoint.h"
#include "mamba/sha256.h"
#include "pipelines/progress.h"
#include "pipelines/score_alleles.h"
#include "pipelines/score_contigs.h"
#include "pipelines/score_engine.h"
#include "pipelines/score_handoff.h"
#include "genomics/vcf_source.h"
#include "pipelines/score_output.h"
#include "pipelines/score_sequence.h"

namespace gm {

namespace {

using RecordPtr = std::unique_ptr<bcf1_t, void (*)(bcf1_t*)>;

// Window mode groups: at most this many records, spanning at most this many bases.
constexpr size_t kGroupRecords = 2048;
constexpr int64_t kGroupSpan = 1000000;

struct PendingRecord {
  RecordPtr rec{nullptr, bcf_destroy};
  RecordResult result;
  std::vector<std::array<int64_t, 2>> jobs;  // per ALT: job index per strand, -1 = none
};

std::string settings_text(const ScoreOptions& o, int layer, int64_t chunk) {
  std::ostringstream s;
  s << "scores=" << o.scores.to_string() << ";context=" << (o.full_context ? std::string("full") : std::to_string(o.context))
    << ";window=" << o.window << ";strand=" << score_strands_name(o.strand) << ";layer=" << layer;
  if (o.full_context) s << ";chunk=" << chunk;
  return s.str();
}

std::string seconds_text(double s) {
  std::ostringstream os;
  os.setf(std::ios::fixed);
  os.precision(2);
  os << s << " s";
  return os.str();
}

double mean_of_finite(double a, double b) {
  const bool fa = std::isfinite(a), fb = std::isfinite(b);
  if (fa && fb) return 0.5 * (a + b);
  if (fa) return a;
  if (fb) return b;
  return kMissingScore;
}

class ScoreRun {
 public:
  ScoreRun(const ScoreOptions& o, std::ostream& log) : o_(o), log_(log) {}
  ScoreSummary run();

 private:
  void validate_options() const;
  void open_inputs();
  // Restricts the source to the regions and the shard; returns the record count when known.
  int64_t select_records();
  // The EMB capture point and the streaming chunk (from the checkpoint's config, without
  // loading it); then the model on its device, loaded when the first group is scored.
  void plan_model();
  void load_model();
  // The output header's dictionary and provenance lines, before any record is read.
  void prepare_output_header();
  const bcf1_t* next_selected_record();
  void log_summary();
  std::string record_where(const bcf1_t* rec) const;
  void check_order(const bcf1_t* rec);
  bool in_shard(const bcf1_t* rec) const;
  std::optional<int> fasta_contig(const bcf1_t* rec) const;
  void add(const bcf1_t* rec, std::optional<int> fasta_id);
  void flush_group();
  void write_group();
  void report_progress(const std::string& detail, bool force = false);
  // The outputs, opened before the first record is written (the checkpoint's hash, which
  // their header records, is computed meanwhile).
  void ensure_outputs();
  void close_outputs();
  // What a shard's done marker records: the command without --shard, the checkpoint hash.
  DoneMarker done_marker() const { return {command_without_shard(o_.command_line), model_sha_.get()}; }
  // A record's strand jobs, appended to `jobs` (seq: the contig's tokens, null when the
  // record cannot be scored: no such FASTA contig, or past its end).
  void build_jobs(PendingRecord& p, const ContigTokens* seq, int64_t contig_length, std::deque<StrandJob>& jobs);
  // The record's scores from its finished jobs.
  void collect_scores(PendingRecord& p, const std::deque<StrandJob>& jobs);
  void write_record(PendingRecord& p);

  // --context full: the calling thread streams contigs through the model while a second
  // thread reads the records, builds their jobs and writes finished records
  // (score_handoff.h).
  struct FullBatch;
  void run_full();
  void stream_contigs(StreamHandoff& handoff);
  void read_and_write_full(StreamHandoff& handoff, std::deque<FullBatch>& batches);
  void start_full_batch(StreamHandoff& handoff, std::deque<FullBatch>& batches, const bcf1_t* rec);
  void add_full_record(StreamHandoff& handoff, FullBatch& batch, const bcf1_t* rec);
  // Writes the head contigs' records whose scores are final; returns the head's progress as read.
  StreamHandoff::Progress write_ready(StreamHandoff& handoff, std::deque<FullBatch>& batches);

  const ScoreOptions& o_;
  std::ostream& log_;
  ScoreSummary summary_;

  std::optional<FastaReader> fasta_;
  std::optional<VcfSource> source_;
  std::optional<ContigMapping> mapping_;
  ContigIndex space_;
  std::future<std::unique_ptr<Context>> pending_ctx_;
  std::unique_ptr<Context> ctx_;
  std::unique_ptr<MambaModel> model_;
  std::optional<ScoreEngine> engine_;
  std::optional<ScoreVcfWriter> writer_;
  std::optional<ScoreTsvWriter> tsv_;
  std::optional<Progress> progress_;
  std::shared_future<std::string> model_sha_;
  std::atomic<int> stream_percent_{-1};  // progress of the contig being streamed (full context)
  JobGeometry geometry_;
  int64_t chunk_ = 0;
  int layer_ = 0;

  // sequential reading of a shard: keep records whose unit is in [unit_first_, unit_last_)
  bool filter_units_ = false;
  std::vector<UnitInterval> units_;
  int64_t unit_first_ = 0, unit_last_ = 0;

  bool require_sorted_ = false;
  int prev_rid_ = -1;
  int64_t prev_pos_ = -1;
  std::set<int> finished_rids_;

  // the current group
  std::vector<PendingRecord> group_;
  int group_rid_ = -1;
  std::optional<int> group_fasta_;
  int64_t group_min_ = 0, group_max_ = 0;
  std::chrono::steady_clock::time_point last_progress_;
  double flush_seconds_ = 0;  // time in the groups flushed while reading
};

void ScoreRun::validate_options() const {
  if (!o_.scores.any()) throw std::invalid_argument("--scores selects nothing");
  if (!o_.full_context && o_.context < 1) throw std::invalid_argument("--context must be >= 1 or 'full'");
  if (o_.window < 1) throw std::invalid_argument("--window must be >= 1");
  if (o_.batch_rows < 0 || o_.chunk < 0) throw std::invalid_argument("--batch-size and --chunk must be >= 0");
  // The logits the LLR reads are gathered by 32-bit columns of a step.
  if (o_.chunk > std::numeric_limits<int32_t>::max()) throw std::invalid_argument("--chunk must be below 2^31");
  hts_write_mode(o_.output_type);
  if (o_.shard.sharded() && o_.output == "-") {
    throw std::invalid_argument("--shard needs an output file (-o): each shard writes its own file");
  }
}

std::string ScoreRun::record_where(const bcf1_t* rec) const {
  return source_->path() + ": record " + with_commas(source_->record_number()) + " (" +
         bcf_hdr_id2name(source_->header(), rec->rid) + ":" + with_commas(rec->pos + 1) + ")";
}

void ScoreRun::check_order(const bcf1_t* rec) {
  if (!require_sorted_) return;
  const std::string why = o_.full_context ? "--context full" : "--shard";
  if (rec->rid != prev_rid_) {
    if (finished_rids_.count(rec->rid)) {
      throw InputError(record_where(rec) + ": contig " + bcf_hdr_id2name(source_->header(), rec->rid) +
                       " appeared before another contig: the input is not sorted, which " + why +
                       " needs; sort it with 'bcftools sort'");
    }
    if (prev_rid_ >= 0) finished_rids_.insert(prev_rid_);
    prev_rid_ = rec->rid;
  } else if (rec->pos < prev_pos_) {
    throw InputError(record_where(rec) + ": comes after position " + with_commas(prev_pos_ + 1) +
                     ": the input is not sorted, which " + why + " needs; sort it with 'bcftools sort'");
  }
  prev_pos_ = rec->pos;
}

bool ScoreRun::in_shard(const bcf1_t* rec) const {
  if (!filter_units_) return true;
  const char* name = bcf_hdr_id2name(source_->header(), rec->rid);
  const auto sid = space_.find(name);
  if (!sid) throw InputError(record_where(rec) + ": contig '" + name + "' is neither in the VCF header nor in the FASTA");
  // The unit of a record is the interval holding its start: the last interval of its contig
  // starting at or before it (the first one when it starts before them all).
  const auto key = std::make_pair(*sid, static_cast<int64_t>(rec->pos));
  auto it = std::upper_bound(units_.begin(), units_.end(), key, [](const auto& k, const UnitInterval& u) {
    return k < std::make_pair(u.region.contig_id, u.region.beg);
  });
  if (it == units_.begin() || std::prev(it)->region.contig_id != *sid) {
    if (it == units_.end() || it->region.contig_id != *sid) {
      throw InputError(record_where(rec) + ": contig '" + name + "' has no shard unit");
    }
  } else {
    --it;
  }
  return it->unit >= unit_first_ && it->unit < unit_last_;
}

std::optional<int> ScoreRun::fasta_contig(const bcf1_t* rec) const {
  const std::string name = bcf_hdr_id2name(source_->header(), rec->rid);
  if (const auto id = mapping_->find(name)) return id;
  const std::string hint = mapping_->naming_hint(name);
  if (!hint.empty()) throw InputError(record_where(rec) + ": contig '" + name + "' is not in " + o_.fasta + ": " + hint);
  if (!o_.allow_partial_reference) {
    throw InputError(record_where(rec) + ": contig '" + name + "' is not in " + o_.fasta +
                     ": restrict the input with -r/-R, or add --allow-partial-reference when the FASTA holds only "
                     "part of the assembly (such records are then flagged GM_OUTSIDE)");
  }
  return std::nullopt;
}

void ScoreRun::add(const bcf1_t* rec, std::optional<int> fasta_id) {
  const int64_t ref_length = rec->n_allele > 0 ? static_cast<int64_t>(std::strlen(rec->d.allele[0])) : 1;
  const int64_t end = rec->pos + std::max<int64_t>({1, rec->rlen, ref_length});
  if (!group_.empty()) {
    const bool flush = rec->rid != group_rid_ || group_.size() >= kGroupRecords ||
                       std::max(group_max_, end) - std::min<int64_t>(group_min_, rec->pos) > kGroupSpan;
    if (flush) {
      const auto start = std::chrono::steady_clock::now();
      flush_group();
      flush_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
  }
  if (group_.empty()) {
    group_rid_ = rec->rid;
    group_fasta_ = fasta_id;
    group_min_ = rec->pos;
    group_max_ = end;
  }
  group_min_ = std::min<int64_t>(group_min_, rec->pos);
  group_max_ = std::max(group_max_, end);
  PendingRecord p;
  p.rec.reset(bcf_dup(const_cast<bcf1_t*>(rec)));
  if (!p.rec) throw std::bad_alloc();
  if (bcf_unpack(p.rec.get(), BCF_UN_STR) < 0) throw InputError(record_where(rec) + ": cannot decode the record");
  group_.push_back(std::move(p));
}

void ScoreRun::build_jobs(PendingRecord& p, const ContigTokens* seq, int64_t contig_length,
                          std::deque<StrandJob>& jobs) {
  const bool fwd = o_.strand != ScoreStrands::Reverse, rev = o_.strand != ScoreStrands::Forward;
  bcf1_t* rec = p.rec.get();
  const int n_alt = std::max(0, static_cast<int>(rec->n_allele) - 1);
  p.result.alleles.assign(static_cast<size_t>(n_alt), AlleleScores{kMissingScore, kMissingScore, kMissingScore});
  p.jobs.assign(static_cast<size_t>(n_alt), {-1, -1});
  summary_.alleles += n_alt;
  for (int a = 1; a <= n_alt; ++a) {
    if (!is_sequence_allele(rec->d.allele[a])) ++summary_.symbolic_alleles;
  }
  const std::string_view ref_text = rec->n_allele > 0 ? rec->d.allele[0] : "";
  const auto m = static_cast<int64_t>(ref_text.size());
  if (!seq || rec->pos + std::max<int64_t>(1, m) > contig_length) {
    p.result.outside = true;
    return;
  }
  bool ref_ok = is_sequence_allele(ref_text);
  std::vector<uint8_t> ref;
  if (ref_ok) {
    ref = allele_tokens(ref_text);
    for (int64_t i = 0; i < m && ref_ok; ++i) ref_ok = ref[static_cast<size_t>(i)] == seq->forward(rec->pos + i);
  }
  if (!ref_ok) {
    p.result.ref_mismatch = true;
    return;
  }
  for (int a = 1; a <= n_alt; ++a) {
    if (!is_sequence_allele(rec->d.allele[a])) continue;
    const std::vector<uint8_t> alt = allele_tokens(rec->d.allele[a]);
    for (int s = 0; s < 2; ++s) {
      if (!(s == 0 ? fwd : rev)) continue;
      jobs.push_back(
          make_strand_job(s == 0 ? Strand::Forward : Strand::Reverse, rec->pos, ref, alt, contig_length, geometry_));
      p.jobs[static_cast<size_t>(a - 1)][static_cast<size_t>(s)] = static_cast<int64_t>(jobs.size()) - 1;
    }
  }
}

void ScoreRun::collect_scores(PendingRecord& p, const std::deque<StrandJob>& jobs) {
  for (size_t a = 0; a < p.jobs.size(); ++a) {
    const auto& idx = p.jobs[a];
    const StrandJob* js[2] = {idx[0] >= 0 ? &jobs[static_cast<size_t>(idx[0])] : nullptr,
                              idx[1] >= 0 ? &jobs[static_cast<size_t>(idx[1])] : nullptr};
    auto value = [&](double StrandJob::*field) {
      return mean_of_finite(js[0] ? js[0]->*field : kMissingScore, js[1] ? js[1]->*field : kMissingScore);
    };
    AlleleScores& s = p.result.alleles[a];
    s.llr = value(&StrandJob::llr_value);
    s.dll = value(&StrandJob::dll_value);
    s.emb = value(&StrandJob::emb_value);
    for (const StrandJob* j : js) {
      if (j && j->edge) p.result.edge = true;
    }
    if (std::isfinite(s.llr) || std::isfinite(s.dll) || std::isfinite(s.emb)) ++summary_.scored_alleles;
  }
}

void ScoreRun::write_record(PendingRecord& p) {
  const auto start = std::chrono::steady_clock::now();
  ensure_outputs();
  writer_->write(p.rec.get(), o_.scores, p.result);
  if (tsv_) tsv_->write(source_->header(), p.rec.get(), p.result);
  ++summary_.records;
  summary_.outside += p.result.outside;
  summary_.ref_mismatch += p.result.ref_mismatch;
  summary_.edge += p.result.edge;
  summary_.write_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void ScoreRun::flush_group() {
  if (group_.empty()) return;
  const auto setup_start = std::chrono::steady_clock::now();
  load_model();
  const auto sequence_start = std::chrono::steady_clock::now();
  summary_.setup_seconds += std::chrono::duration<double>(sequence_start - setup_start).count();
  std::deque<StrandJob> jobs;
  std::optional<ContigTokens> seq;
  int64_t length = 0;
  if (group_fasta_) {
    length = fasta_->contigs()[static_cast<size_t>(*group_fasta_)].length;
    const int64_t pad = std::max(o_.context, o_.window) + 2;
    if (group_min_ < length) seq.emplace(*fasta_, *group_fasta_, group_min_ - pad, group_max_ + pad);
  }
  summary_.sequence_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - sequence_start).count();
  for (auto& p : group_) build_jobs(p, seq ? &*seq : nullptr, length, jobs);
  std::vector<StrandJob*> job_ptrs;
  for (auto& j : jobs) job_ptrs.push_back(&j);
  const auto model_start = std::chrono::steady_clock::now();
  if (!job_ptrs.empty()) engine_->score_window(*seq, job_ptrs);
  summary_.model_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - model_start).count();
  for (auto& p : group_) collect_scores(p, jobs);
  write_group();
}

void ScoreRun::write_group() {
  for (auto& p : group_) write_record(p);
  group_.clear();
  report_progress("");
}

// ---- --context full ---------------------------------------------------------------

// The records of one contig on the reading thread: built, handed over (their jobs), written.
struct ScoreRun::FullBatch {
  int rid = -1;
  int contig = -1;  // index in the StreamHandoff; -1: nothing of it is scored (no stream)
  bool incremental = false;
  bool closed = false;  // every record of the contig is in `records`
  int64_t length = 0;
  std::shared_ptr<const ContigTokens> seq;
  std::deque<PendingRecord> records;  // input order
  std::deque<StrandJob> jobs;         // addresses stable: the stream holds pointers to them
  size_t written = 0;
};

void ScoreRun::run_full() {
  StreamHandoff handoff;
  // The reading thread's contigs live here, not on its stack: when it fails, the stream may
  // still hold pointers to their jobs until it has stopped too.
  std::deque<FullBatch> batches;
  std::thread reader([&] {
    try {
      read_and_write_full(handoff, batches);
    } catch (...) {
      handoff.fail(std::current_exception());
    }
  });
  try {
    stream_contigs(handoff);
  } catch (...) {
    handoff.fail(std::current_exception());  // the reader's error when it came first
  }
  const auto drain_start = std::chrono::steady_clock::now();
  reader.join();
  summary_.drain_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - drain_start).count();
  if (const std::exception_ptr error = handoff.error()) std::rethrow_exception(error);
}

void ScoreRun::stream_contigs(StreamHandoff& handoff) {
  int index = -1;
  std::shared_ptr<const ContigTokens> seq;
  bool incremental = false;
  for (;;) {
    const auto wait_start = std::chrono::steady_clock::now();
    const bool more = handoff.next_contig(index, seq, incremental);
    const auto setup_start = std::chrono::steady_clock::now();
    summary_.feed_wait_seconds += std::chrono::duration<double>(setup_start - wait_start).count();
    if (!more) break;
    load_model();
    const auto model_start = std::chrono::steady_clock::now();
    summary_.setup_seconds += std::chrono::duration<double>(model_start - setup_start).count();
    HandoffJobSource source(handoff, index, incremental);
    engine_->score_full(*seq, source, [&](double f) { stream_percent_ = static_cast<int>(100 * f); });
    const double streamed = std::chrono::duration<double>(std::chrono::steady_clock::now() - model_start).count();
    summary_.model_seconds += streamed - source.wait_seconds();
    summary_.feed_wait_seconds += source.wait_seconds();
    handoff.set_all_final(index);
    seq.reset();
  }
}

const bcf1_t* ScoreRun::next_selected_record() {
  while (const bcf1_t* rec = source_->next()) {
    if (!in_shard(rec)) continue;
    check_order(rec);
    return rec;
  }
  return nullptr;
}

void ScoreRun::start_full_batch(StreamHandoff& handoff, std::deque<FullBatch>& batches, const bcf1_t* rec) {
  FullBatch& b = batches.emplace_back();
  b.rid = rec->rid;
  const std::optional<int> fasta = fasta_contig(rec);
  if (fasta) {
    b.length = fasta_->contigs()[static_cast<size_t>(*fasta)].length;
    if (rec->pos < b.length) {  // records are sorted: a contig whose first record is past its end has none inside
      // One background fetch at a time: the FASTA reader is not shared between threads.
      for (const FullBatch& other : batches) {
        if (&other != &b && other.seq) other.seq->fetch_done();
      }
      b.seq = ContigTokens::fetch_in_background(*fasta_, *fasta, 0, b.length);
    }
  }
  if (b.seq) {
    b.incremental = o_.strand == ScoreStrands::Forward && !o_.scores.branches();
    b.contig = handoff.open_contig(b.seq, b.incremental);
  }
}

void ScoreRun::add_full_record(StreamHandoff& handoff, FullBatch& b, const bcf1_t* rec) {
  PendingRecord& p = b.records.emplace_back();
  p.rec.reset(bcf_dup(const_cast<bcf1_t*>(rec)));
  if (!p.rec) throw std::bad_alloc();
  if (bcf_unpack(p.rec.get(), BCF_UN_STR) < 0) throw InputError(record_where(rec) + ": cannot decode the record");
  const size_t first_job = b.jobs.size();
  build_jobs(p, b.seq.get(), b.length, b.jobs);
  if (b.contig >= 0) {
    handoff.advance(rec->pos);
    for (size_t j = first_job; j < b.jobs.size(); ++j) handoff.add_job(&b.jobs[j], rec->pos);
  }
}

StreamHandoff::Progress ScoreRun::write_ready(StreamHandoff& handoff, std::deque<FullBatch>& batches) {
  StreamHandoff::Progress done{0, true};
  while (!batches.empty()) {
    FullBatch& b = batches.front();
    done = b.contig >= 0 ? handoff.progress(b.contig) : StreamHandoff::Progress{0, true};
    bool wrote = false;
    while (b.written < b.records.size()) {
      PendingRecord& p = b.records[b.written];
      if (!done.all_final && !(b.incremental && p.rec->pos < done.final_before)) break;
      collect_scores(p, b.jobs);
      write_record(p);
      // The stream is done with the jobs of a final record: their memory goes now, while
      // the model still runs, instead of all at once when the contig ends (freeing the
      // batch of 99,393 records in one go took ~50 ms on the H200 host, after the stream).
      for (const auto& per_strand : p.jobs) {
        for (const int64_t j : per_strand) {
          if (j >= 0) b.jobs[static_cast<size_t>(j)] = StrandJob{};
        }
      }
      p = PendingRecord{};
      ++b.written;
      wrote = true;
    }
    if (wrote) report_progress(stream_percent_ >= 0 ? "streaming " + std::to_string(stream_percent_) + "%" : "");
    // The stream holds pointers into b.jobs until it calls the contig final.
    if (!(b.closed && b.written == b.records.size() && done.all_final)) break;
    if (b.seq) {
      b.seq->fetch_done();
      summary_.sequence_seconds += b.seq->fetch_seconds();
    }
    batches.pop_front();
  }
  return done;
}

void ScoreRun::read_and_write_full(StreamHandoff& handoff, std::deque<FullBatch>& batches) {
  // At most two contigs at a time: the one streamed (and written) and the next one read.
  constexpr size_t kMaxBatches = 2;
  RecordPtr stashed{nullptr, bcf_destroy};  // the first record of a contig that has to wait for room
  bool eof = false;
  auto close_reading = [&] {
    if (batches.empty() || batches.back().closed) return;
    batches.back().closed = true;
    if (batches.back().contig >= 0) handoff.close_contig();
  };
  for (;;) {
    // What the head contig's progress was when its records were last written: the wait
    // below returns once it differs (a change after that check is not missed).
    const StreamHandoff::Progress seen = write_ready(handoff, batches);
    auto wait_for_head = [&] {
      if (batches.front().contig < 0) throw std::logic_error("score: waiting on a contig that is not streamed");
      handoff.wait_progress(batches.front().contig, seen);
    };
    if (stashed) {
      if (batches.size() < kMaxBatches) {
        start_full_batch(handoff, batches, stashed.get());
        const auto start = std::chrono::steady_clock::now();
        add_full_record(handoff, batches.back(), stashed.get());
        summary_.read_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        stashed.reset();
      } else {
        wait_for_head();
      }
    } else if (!eof) {
      const auto start = std::chrono::steady_clock::now();
      const bcf1_t* rec = next_selected_record();
      if (!rec) {
        eof = true;
        close_reading();
        handoff.finish_input();
      } else if (!batches.empty() && !batches.back().closed && batches.back().rid == rec->rid) {
        add_full_record(handoff, batches.back(), rec);
      } else {
        close_reading();
        stashed.reset(bcf_dup(const_cast<bcf1_t*>(rec)));
        if (!stashed) throw std::bad_alloc();
      }
      summary_.read_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    } else if (batches.empty()) {
      break;
    } else {
      wait_for_head();
    }
  }
  close_outputs();
}

void ScoreRun::report_progress(const std::string& detail, bool force) {
  if (!progress_) return;
  const auto now = std::chrono::steady_clock::now();
  if (!force && now - last_progress_ < std::chrono::seconds(2)) return;
  last_progress_ = now;
  const double rate = static_cast<double>(summary_.records) / std::max(1e-9, progress_->elapsed_seconds());
  std::string text = Progress::format_rate(rate) + " variants/s";
  if (!detail.empty()) text += " | " + detail;
  progress_->update(summary_.records, text);
}

void ScoreRun::open_inputs() {
  fasta_.emplace(o_.fasta);
  source_.emplace(o_.vcf);
  mapping_.emplace(fasta_->contigs(), o_.rename_contigs);
  const std::vector<HeaderContig> header_contigs = vcf_header_contigs(source_->header());
  check_vcf_contigs(header_contigs, *fasta_, *mapping_, o_.allow_partial_reference, o_.vcf);
  space_ = vcf_space(header_contigs, *fasta_, *mapping_);
}

int64_t ScoreRun::select_records() {
  std::vector<Region> regions = parse_regions(o_.regions, space_);
  if (!o_.regions_file.empty()) {
    auto more = read_regions_file(o_.regions_file, space_);
    regions.insert(regions.end(), more.begin(), more.end());
  }
  const bool user_regions = !regions.empty();
  regions = normalize_regions(user_regions ? std::move(regions) : whole_contigs(space_));
  require_sorted_ = o_.full_context || o_.shard.sharded();
  if (!o_.shard.sharded()) {
    if (!user_regions) return source_->indexed_record_count();  // the whole file, in order
    const size_t n = regions.size();
    source_->select(std::move(regions), 0, n);
    return -1;
  }
  units_ = shard_units(regions, o_.full_context, o_.shard_block);
  const int64_t n_units = units_.empty() ? 0 : units_.back().unit + 1;
  const auto [first, last] = shard_range(o_.shard, static_cast<size_t>(n_units));
  unit_first_ = static_cast<int64_t>(first);
  unit_last_ = static_cast<int64_t>(last);
  if (!user_regions && !source_->has_index()) {
    filter_units_ = true;  // no index: read everything, keep this shard's units
    return -1;
  }
  // The whole list goes to the source so that a record spanning two units is returned
  // only with the first, even when that one belongs to another shard.
  std::vector<Region> intervals;
  size_t i0 = units_.size(), i1 = 0;
  for (size_t i = 0; i < units_.size(); ++i) {
    intervals.push_back(units_[i].region);
    if (units_[i].unit >= unit_first_ && units_[i].unit < unit_last_) {
      i0 = std::min(i0, i);
      i1 = i + 1;
    }
  }
  source_->select(std::move(intervals), i0, std::max(i0, i1));
  return -1;
}

void ScoreRun::plan_model() {
  const int64_t n_layer = read_checkpoint_config(o_.weights).n_layer;
  layer_ = o_.layer >= 0 ? o_.layer : static_cast<int>(n_layer);
  if (layer_ > n_layer)
    throw std::invalid_argument("--layer " + std::to_string(layer_) + " is outside [0, " + std::to_string(n_layer) + "]");
  chunk_ = o_.chunk > 0 ? o_.chunk : default_stream_chunk(o_.device, o_.scores);
  geometry_.llr = o_.scores.llr;
  geometry_.dll = o_.scores.dll;
  geometry_.emb = o_.scores.emb;
  geometry_.context = o_.full_context ? 0 : o_.context;
  geometry_.window = o_.window;
}

void ScoreRun::load_model() {
  if (engine_) return;
  ctx_ = pending_ctx_.get();
  model_ = gm::load_model(*ctx_, o_.weights);
  EngineOptions eo;
  eo.scores = o_.scores;
  eo.layer = layer_;
  eo.batch_rows = o_.batch_rows > 0 ? o_.batch_rows : default_batch_rows(o_.device);
  // An explicit --batch-size is taken as asked; by default long rows mean fewer rows per pass.
  eo.max_tokens = o_.batch_rows > 0 ? std::numeric_limits<int64_t>::max() / 4 : default_max_tokens(o_.device);
  eo.chunk = chunk_;
  engine_.emplace(*ctx_, *model_, eo);
}

void ScoreRun::prepare_output_header() {
  ScoreProvenance prov;
  prov.command_line = o_.command_line;
  prov.reference = o_.fasta;
  prov.settings = settings_text(o_, layer_, chunk_);
  if (o_.shard.sharded()) prov.shard = o_.shard.to_string();
  bcf_hdr_t* header = source_->mutable_header();
  if (header->n[BCF_DT_CTG] == 0) {
    // Without ##contig lines htslib defines contigs as records name them, after the
    // output header is written: a BCF would then name contigs its header lacks.
    for (const auto& c : fasta_->contigs().contigs()) {
      const std::string line = "##contig=<ID=" + mapping_->vcf_name(c.name) + ",length=" + std::to_string(c.length) + ">";
      if (bcf_hdr_append(header, line.c_str()) != 0) throw std::runtime_error("cannot add " + line + " to the header");
    }
  }
  // Every dictionary entry (contigs, INFO tags) before the first record is read; only the
  // checkpoint hash line (no dictionary entry) is added when the outputs open.
  prepare_score_header(header, o_.scores, prov);
}

void ScoreRun::close_outputs() {
  const auto start = std::chrono::steady_clock::now();
  ensure_outputs();
  writer_->finish();
  if (tsv_) tsv_->finish();
  summary_.close_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  summary_.write_seconds += summary_.close_seconds;
}

void ScoreRun::ensure_outputs() {
  if (writer_) return;
  bcf_hdr_t* header = source_->mutable_header();
  set_score_model_line(header, model_sha_.get());
  const int io_threads = o_.threads > 0 ? o_.threads : static_cast<int>(std::thread::hardware_concurrency());
  writer_.emplace(summary_.output, o_.output_type, o_.write_index, header, io_threads);
  if (!o_.tsv.empty()) tsv_.emplace(shard_output_path(o_.tsv, o_.shard), o_.scores);
}

void ScoreRun::log_summary() {
  log_ << "score: " << with_commas(summary_.records) << " records, " << with_commas(summary_.alleles)
       << " ALT alleles (" << with_commas(summary_.scored_alleles) << " scored, " << with_commas(summary_.symbolic_alleles)
       << " symbolic/unscorable); flagged: " << with_commas(summary_.ref_mismatch) << " GM_REFMISMATCH, "
       << with_commas(summary_.outside) << " GM_OUTSIDE, " << with_commas(summary_.edge) << " GM_EDGE; "
       << Progress::format_duration(summary_.seconds) << " ("
       << Progress::format_rate(static_cast<double>(summary_.records) / std::max(1e-9, summary_.seconds))
       << " variants/s; model " << seconds_text(summary_.model_seconds) << ", writing "
       << seconds_text(summary_.write_seconds) << ") -> " << summary_.output << "\n";
}

ScoreSummary ScoreRun::run() {
  validate_options();
  const auto t0 = std::chrono::steady_clock::now();
  summary_.output = shard_output_path(o_.output, o_.shard);
  // The checkpoint's hash goes into the output header (written before the first record)
  // and the shard marker; hashing a large checkpoint takes a while, so it runs beside the
  // rest of the start.
  model_sha_ = std::async(std::launch::async, [path = o_.weights] { return sha256_file(path); }).share();
  if (o_.shard.sharded() &&
      shard_already_done(summary_.output, done_marker())) {
    summary_.skipped = true;
    log_ << "score: shard " << o_.shard.to_string() << " is already done (" << summary_.output << "), skipped\n";
    return summary_;
  }
  // Creating a GPU context takes a few tenths of a second (driver, cuBLAS): it runs in the
  // background while the inputs are opened and the first group's records are read; the
  // model is loaded onto it when that group is scored.
  pending_ctx_ = Context::create_async(o_.device, o_.threads, o_.precision);
  open_inputs();
  const int64_t total = select_records();
  plan_model();
  prepare_output_header();
  if (o_.progress) progress_.emplace(log_, "score", total > 0 ? total : 0, "records");
  last_progress_ = std::chrono::steady_clock::now();
  summary_.open_seconds = std::chrono::duration<double>(last_progress_ - t0).count();

  if (o_.full_context) {
    run_full();  // writes and closes the outputs on its reading thread
  } else {
    const auto read_start = last_progress_;
    while (const bcf1_t* rec = next_selected_record()) add(rec, fasta_contig(rec));
    // Groups flushed while reading are not reading.
    summary_.read_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - read_start).count() -
                            flush_seconds_;
    flush_group();
    close_outputs();
  }
  if (o_.shard.sharded()) write_done_marker(summary_.output, done_marker());
  summary_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (progress_) {
    report_progress("done", true);
    progress_->finish();
  }
  log_summary();
  return summary_;
}

}  // namespace

ScoreSummary run_score(const ScoreOptions& options, std::ostream& log) { return ScoreRun(options, log).run(); }

}  // namespace gm
