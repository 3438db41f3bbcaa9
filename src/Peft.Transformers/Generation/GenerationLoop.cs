using Peft.Core;
using TorchSharp;
using static TorchSharp.torch;
using Peft.Core.Torch;

namespace Peft.Transformers.Generation;

/// <summary>
/// The decoding loop shared by every causal model and by PEFT models (HF <c>GenerationMixin.generate</c>):
/// greedy search, multinomial sampling and beam search over a key/value cache, one new token per step.
/// </summary>
/// <remarks>
/// Per step (greedy / sampling), as HF <c>_sample</c>:
/// <code>
/// logits = model(new tokens, cache)[:, -1]        // [N, V] float32
/// scores = processors(ids, logits)                // repetition penalty, n-gram ban, min length, temperature, top-k, top-p
/// next   = sample ? multinomial(softmax(scores)) : argmax(scores)
/// next   = finished ? pad : next;  ids = cat(ids, next)
/// finished |= next in eos  or  length == max_length
/// </code>
/// </remarks>
public static class GenerationLoop
{
    /// <summary>HF's default <c>max_length</c> when neither it nor <c>max_new_tokens</c> is given.</summary>
    public const int DefaultMaxLength = 20;

    /// <summary>
    /// Generates continuations of <paramref name="inputIds"/> [B, T] int64 (left-padded when batched) and returns
    /// [B · NumReturnSequences, T + new] int64 owned by the caller, as HF <c>generate</c> does: rows that finish early
    /// are filled with the pad id (the first eos id when no pad id is set). The result is created in the caller's
    /// current dispose scope (dispose it yourself when there is none).
    /// </summary>
    /// <param name="model">A causal LM: takes <see cref="ModelInput"/> (ids, mask, position ids, cache) and returns logits [N, T, V].</param>
    /// <param name="inputIds">Prompt ids [B, T] int64.</param>
    /// <param name="attentionMask">1 for tokens, 0 for (left) padding, [B, T]; null = derived as HF does (pad ids masked when pad ≠ eos).</param>
    /// <param name="config">Per-call settings; values left at their defaults take <paramref name="modelDefaults"/>'s.</param>
    /// <param name="modelDefaults">The model's <c>generation_config.json</c> values, or null.</param>
    public static Tensor Generate(nn.Module<ModelInput, ModelOutput> model, Tensor inputIds,
        Tensor? attentionMask, GenerationConfig config, GenerationConfig? modelDefaults = null) =>
        Generate(model, inputIds, attentionMask, config, modelDefaults, CancellationToken.None);

    /// <summary>
    /// <see cref="Generate(nn.Module{ModelInput, ModelOutput}, Tensor, Tensor?, GenerationConfig, GenerationConfig?)"/>
    /// that checks <paramref name="cancellationToken"/> before every step (throws <see cref="OperationCanceledException"/>).
    /// </summary>
    public static Tensor Generate(nn.Module<ModelInput, ModelOutput> model, Tensor inputIds,
        Tensor? attentionMask, GenerationConfig config, GenerationConfig? modelDefaults, CancellationToken cancellationToken)
    {
        var plan = Prepare(model, inputIds, attentionMask, config, modelDefaults);
        using var _ = no_grad();
        if (plan.Config.NumBeams > 1)
        {
            StaticDecoding.Choose(model, plan.Config, plan.InputIds.device);   // beam search keeps the dynamic cache; throws when "static" was asked for
            try { return BeamSearch(model, plan, cancellationToken); }
            finally { plan.InputIds.Dispose(); plan.Mask.Dispose(); }
        }
        using var decoder = new TokenDecoder(model, plan, TokenDecoder.DeferredCheckSteps);
        while (decoder.Step()) cancellationToken.ThrowIfCancellationRequested();
        using var sequences = decoder.TakeSequences();
        return sequences.alias();                      // a handle in the caller's dispose scope (if any)
    }

    /// <summary>
    /// Streams the new token ids of one prompt (<paramref name="inputIds"/> [1, T]) as they are chosen (greedy or
    /// sampling; HF <c>generate(streamer=...)</c>). Stops after an eos id (which is yielded) or at the length limit.
    /// Enumeration holds no dispose scope open between items.
    /// </summary>
    public static IEnumerable<int> Stream(nn.Module<ModelInput, ModelOutput> model, Tensor inputIds,
        Tensor? attentionMask, GenerationConfig config, GenerationConfig? modelDefaults = null,
        CancellationToken cancellationToken = default)
    {
        var plan = Prepare(model, inputIds, attentionMask, config, modelDefaults);
        if (plan.BatchSize != 1 || plan.Config.NumReturnSequences != 1)
            throw new ArgumentException($"streaming needs one prompt and one sequence; got batch {plan.BatchSize}, num_return_sequences {plan.Config.NumReturnSequences}", nameof(inputIds));
        if (plan.Config.NumBeams > 1)
            throw new ArgumentException($"streaming does not support beam search (num_beams = {plan.Config.NumBeams})", nameof(config));
        return StreamCore(model, plan, cancellationToken);
    }

    private static IEnumerable<int> StreamCore(nn.Module<ModelInput, ModelOutput> model, Plan plan, CancellationToken ct)
    {
        using var decoder = new TokenDecoder(model, plan, checkEvery: 1);   // the host reads every token anyway
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            bool more;
            using (no_grad()) more = decoder.Step();
            if (!more) yield break;
            yield return (int)decoder.LastTokens[0];
        }
    }

    /// <summary>
    /// Streams decoded text pieces of one prompt as HF's <c>TextStreamer</c> does: the new tokens are decoded together
    /// after each step; text ending in a newline is emitted whole (and the token buffer restarts), text ending in a CJK
    /// character is emitted up to its end, otherwise only up to the last space (a word may still change with the next
    /// token); the rest is flushed at the end.
    /// </summary>
    /// <param name="model">A causal LM (see <c>Generate</c>).</param>
    /// <param name="inputIds">One prompt, [1, T] int64.</param>
    /// <param name="attentionMask">Its mask [1, T], or null.</param>
    /// <param name="config">Per-call settings (greedy or sampling).</param>
    /// <param name="decode">Decodes a list of new token ids to text (e.g. <c>ids =&gt; tok.Decode(ids, skipSpecialTokens: true)</c>).</param>
    /// <param name="modelDefaults">The model's generation defaults, or null.</param>
    /// <param name="cancellationToken">Checked before every step.</param>
    public static IEnumerable<string> StreamText(nn.Module<ModelInput, ModelOutput> model, Tensor inputIds,
        Tensor? attentionMask, GenerationConfig config, Func<IReadOnlyList<int>, string> decode,
        GenerationConfig? modelDefaults = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(decode);
        var tokens = Stream(model, inputIds, attentionMask, config, modelDefaults, cancellationToken);
        return StreamTextCore(tokens, decode);
    }

    private static IEnumerable<string> StreamTextCore(IEnumerable<int> tokens, Func<IReadOnlyList<int>, string> decode)
    {
        var ids = new List<int>();
        int printed = 0;
        foreach (var t in tokens)
        {
            ids.Add(t);
            var text = decode(ids);
            string piece;
            if (text.EndsWith('\n'))
            {
                piece = text[Math.Min(printed, text.Length)..];
                ids.Clear();
                printed = 0;
            }
            else if (text.Length > 0 && IsCjk(text[^1]))
            {
                piece = text[Math.Min(printed, text.Length)..];
                printed += piece.Length;
            }
            else
            {
                int upTo = text.LastIndexOf(' ') + 1;
                piece = upTo > printed ? text[printed..upTo] : "";
                printed += piece.Length;
            }
            if (piece.Length > 0) yield return piece;
        }
        var final = ids.Count == 0 ? "" : decode(ids);
        if (final.Length > printed) yield return final[printed..];
    }

    /// <summary>The CJK ranges HF's <c>TextStreamer._is_chinese_char</c> checks (BMP part).</summary>
    private static bool IsCjk(char c) =>
        c is >= '\u4E00' and <= '\u9FFF' or >= '\u3400' and <= '\u4DBF' or >= '\uF900' and <= '\uFAFF';

    /// <summary>
    /// The config that will actually run: <paramref name="config"/> over <paramref name="modelDefaults"/>, validated,
    /// with HF's fallbacks (pad = first eos id when unset).
    /// </summary>
    public static GenerationConfig Resolve(GenerationConfig config, GenerationConfig? modelDefaults = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        var cfg = config.MergeOver(modelDefaults);
        cfg.Validate();
        var eos = cfg.EffectiveEosTokenIds;
        if (cfg.PadTokenId is null && eos.Count > 0) cfg = cfg with { PadTokenId = eos[0] };
        return cfg;
    }

    // ---------------------------------------------------------------- preparation

    internal sealed record Plan(GenerationConfig Config, Tensor InputIds, Tensor Mask, int PromptLength, int MaxLength,
        int BatchSize, long[] Eos, long Pad, bool HasEos);

    private static Plan Prepare(nn.Module<ModelInput, ModelOutput> model, Tensor inputIds, Tensor? attentionMask,
        GenerationConfig config, GenerationConfig? modelDefaults)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(inputIds);
        var cfg = Resolve(config, modelDefaults);
        if (inputIds.dim() != 2)
            throw new ArgumentException($"inputIds must be [B, T]; got shape [{string.Join(", ", inputIds.shape)}]", nameof(inputIds));
        if (inputIds.dtype != ScalarType.Int64)
            throw new ArgumentException($"inputIds must be int64; got {inputIds.dtype}", nameof(inputIds));
        if (inputIds.shape[1] == 0) throw new ArgumentException("inputIds has no tokens (T = 0); pass at least a BOS token", nameof(inputIds));
        if (attentionMask is not null && !attentionMask.shape.SequenceEqual(inputIds.shape))
            throw new ArgumentException($"attentionMask shape [{string.Join(", ", attentionMask.shape)}] differs from inputIds [{string.Join(", ", inputIds.shape)}]", nameof(attentionMask));

        var eos = cfg.EffectiveEosTokenIds.Select(x => (long)x).ToArray();
        long pad = cfg.PadTokenId ?? -1;
        int promptLength = (int)inputIds.shape[1];
        int maxLength = cfg.MaxNewTokens is { } n ? promptLength + n : cfg.MaxLength ?? DefaultMaxLength;

        using var scope = NewDisposeScope();
        Tensor mask;
        if (attentionMask is not null) mask = attentionMask.to_type(ScalarType.Int64);
        else if (cfg.PadTokenId is { } p && !eos.Contains(p) && inputIds.eq(HeldScalars.Of(p)).any().item<bool>()) mask = inputIds.ne(HeldScalars.Of(p)).to_type(ScalarType.Int64);
        else mask = ones_like(inputIds);
        var ids = inputIds.alias();
        int expand = cfg.NumBeams > 1 ? cfg.NumBeams : cfg.NumReturnSequences;
        if (expand > 1)
        {
            ids = ids.repeat_interleave(expand, dim: 0);
            mask = mask.repeat_interleave(expand, dim: 0);
        }
        ids = ids.contiguous().DetachFromDisposeScope();
        mask = mask.contiguous().DetachFromDisposeScope();
        return new Plan(cfg, ids, mask, promptLength, maxLength, (int)inputIds.shape[0], eos, pad, eos.Length > 0);
    }

    // ---------------------------------------------------------------- greedy and sampling (HF _sample)

    /// <summary>
    /// One greedy/sampling decode in progress; owns its running tensors (detached from scopes). The step loop reads
    /// nothing back from the device except the "every row finished" flag, and that only every
    /// <c>checkEvery</c> steps and at the length limit (HF reads it every step). Steps run after the last row
    /// finished add only padding columns; they are counted on the device (<c>_idle</c>: steps that started with every
    /// row finished, i.e. the steps HF does not run) and cut off when the flag is read, so the output equals HF's.
    /// Per step the finished flags are updated in place and finished rows padded in place (<c>masked_fill_</c>), with
    /// the pad Scalar made once per generation: the fewest native calls for HF's <c>next · unfinished + pad · (1 −
    /// unfinished)</c> and <c>unfinished &amp;= ~isin(next, eos)</c>.
    /// </summary>
    private sealed class TokenDecoder : IDisposable
    {
        /// <summary>Steps between host reads of the finished flag in <c>Generate</c> (at most this many − 1 extra forwards after the last eos).</summary>
        public const int DeferredCheckSteps = 8;

        private readonly int _checkEvery;
        private readonly Tensor _idle;                                                    // int64 scalar on the device
        private long _steps;                                                              // Step calls that chose tokens
        private readonly Scalar _pad;                                                     // owned, made once
        private int _sinceCheck;
        private readonly Plan _plan;
        private readonly ModelStepper _stepper;
        private readonly StaticDecodeHolder.Lease? _static;
        private readonly LogitsProcessorList _processors;
        private readonly Generator? _generator;
        private readonly Tensor? _eos;                                                    // [E], on the model's device, made once
        private Tensor _ids, _mask, _last;
        private readonly Tensor _finished;                                                // bool [N], updated in place
        private long _length;                                                             // _ids.shape[1], kept on the host
        private readonly long _rows;                                                      // _ids.shape[0]
        private bool _done;
        // No padding in any row and a model without a step hook: the model gets no mask (none is grown per step) and
        // positions from one arange (ModelStepper). A hook's contract includes the mask of the whole sequence.
        private readonly bool _maskFree;

        /// <summary>The tokens chosen by the last step (copied to the host only when asked: streaming needs them, Generate does not).</summary>
        public long[] LastTokens
        {
            get
            {
                using var scope = NewDisposeScope();
                return _last.cpu().data<long>().ToArray();
            }
        }

        public TokenDecoder(nn.Module<ModelInput, ModelOutput> model, Plan plan, int checkEvery)
        {
            _plan = plan;
            _checkEvery = Math.Max(1, checkEvery);
            _processors = LogitsProcessorList.FromConfig(plan.Config, plan.PromptLength);
            if (plan.Config.DoSample && plan.Config.Seed is { } seed)
                _generator = new Generator(unchecked((ulong)seed), plan.InputIds.device);
            _ids = plan.InputIds;
            _mask = plan.Mask;
            _length = plan.PromptLength;
            using (var scope = NewDisposeScope())
                _maskFree = model is not IGenerationStepHook && plan.Mask.ne(HeldScalars.Of(0)).all().item<bool>();   // one host read per generation
            _rows = _ids.shape[0];
            _finished = zeros(_rows, dtype: ScalarType.Bool, device: _ids.device).DetachFromDisposeScope();
            _pad = plan.Pad.ToScalar();
            _last = empty(0, dtype: ScalarType.Int64).DetachFromDisposeScope();
            _idle = zeros([], dtype: ScalarType.Int64, device: _ids.device).DetachFromDisposeScope();
            if (plan.HasEos) _eos = tensor(plan.Eos, device: _ids.device).DetachFromDisposeScope();
            // Static-cache decoding (a CUDA graph per step on CUDA) when the config and the model allow it; the state
            // is borrowed from the model's holder (last, so nothing after it can throw) and given back at Dispose.
            if (StaticDecoding.Choose(model, plan.Config, _ids.device) is { } chosen)
                _static = chosen.Holder.Acquire(_rows, StaticDecoding.Capacity(Math.Max(plan.MaxLength, plan.PromptLength + 1)), _ids.device, chosen.UseGraph);
            _stepper = new ModelStepper(model, plan.Config.UseCache, _static?.State);
        }

        /// <summary>Chooses one token per row; false (and nothing done) once every row has finished.</summary>
        public bool Step()
        {
            if (_done) return false;
            using var scope = NewDisposeScope();
            var logits = _stepper.Forward(_ids, _maskFree ? null : _mask, (_rows, _length));   // [N, V]
            var scores = _processors.Process(_ids, logits);
            Tensor next;
            if (_plan.Config.DoSample)
            {
                var probs = scores.softmax(-1);
                next = multinomial(probs, 1, generator: _generator).squeeze(1);
            }
            else next = scores.argmax(-1);                                                 // [N]
            if (_plan.HasEos) next.masked_fill_(_finished, _pad);                          // finished rows get the pad id
            var ids = cat([_ids, next.unsqueeze(1)], 1);
            long length = ++_length;
            // HF: finished |= length limit reached | next is an eos id
            _idle.add_(_finished.all(), HeldScalars.One);                          // a step HF would not have run
            _steps++;
            if (length >= _plan.MaxLength) _finished.fill_(HeldScalars.One);
            else if (_eos is not null) _finished.logical_or_(isin(next, _eos));
            Replace(ref _last, next);
            Replace(ref _ids, ids);
            if (!_maskFree) Replace(ref _mask, cat([_mask, ones_like(next).unsqueeze(1)], 1));
            if (++_sinceCheck >= _checkEvery || length >= _plan.MaxLength) CheckFinished();
            return true;
        }

        // The one host read: whether any row is unfinished, and how many steps HF would have run; trims the padding
        // columns of steps run after every row had finished.
        private void CheckFinished()
        {
            _sinceCheck = 0;
            using var scope = NewDisposeScope();
            var flags = stack([_finished.all().to_type(ScalarType.Int64), _idle]).cpu().data<long>().ToArray();
            _done = flags[0] == 1;
            long keep = _plan.PromptLength + _steps - flags[1];
            if (keep >= _length) return;
            _length = keep;
            Replace(ref _ids, _ids.narrow(1, 0, keep).contiguous());
            if (!_maskFree) Replace(ref _mask, _mask.narrow(1, 0, keep).contiguous());
        }

        /// <summary>The sequences so far [N, T + new]; ownership passes to the caller.</summary>
        public Tensor TakeSequences()
        {
            var ids = _ids;
            _ids = empty(0);
            return ids;
        }

        private static void Replace(ref Tensor field, Tensor value)
        {
            field.Dispose();
            field = value.DetachFromDisposeScope();
        }

        public void Dispose()
        {
            _ids.Dispose();
            _mask.Dispose();
            _finished.Dispose();
            _pad.Dispose();
            _last.Dispose();
            _idle.Dispose();
            _eos?.Dispose();
            _generator?.Dispose();
            _stepper.Dispose();
            _static?.Dispose();
        }
    }

    // ---------------------------------------------------------------- beam search (HF _beam_search, vectorised form)

    private static Tensor BeamSearch(nn.Module<ModelInput, ModelOutput> model, Plan plan, CancellationToken ct)
    {
        var cfg = plan.Config;
        int batch = plan.BatchSize, beams = cfg.NumBeams, promptLen = plan.PromptLength, maxLen = plan.MaxLength;
        if (maxLen <= promptLen) maxLen = promptLen + 1;   // HF still produces one token
        var device = plan.InputIds.device;
        int beamsToKeep = Math.Max(2, 1 + plan.Eos.Length) * beams;
        long fill = plan.Pad >= 0 ? plan.Pad : 0;

        using var outer = NewDisposeScope();
        using var stepper = new ModelStepper(model, cfg.UseCache);
        var processors = LogitsProcessorList.FromConfig(cfg, promptLen);
        using var generator = cfg.DoSample && cfg.Seed is { } seed ? new Generator(unchecked((ulong)seed), device) : null;

        var running = full(batch, beams, maxLen, HeldScalars.Of(fill), ScalarType.Int64, device);           // [B, K, L]
        running[.., .., ..promptLen] = plan.InputIds.view(batch, beams, promptLen);
        var sequences = running.clone();
        var runningScores = zeros(batch, beams, ScalarType.Float32, device);
        runningScores[.., 1..] = -1e9f;
        var beamScores = full(batch, beams, HeldScalars.Of(-1e9f), ScalarType.Float32, device);
        var isFinished = zeros(batch, beams, ScalarType.Bool, device);
        var heuristicOpen = ones(batch, 1, ScalarType.Bool, device);
        var runningBeamIdx = full(batch, beams, maxLen - promptLen, HeldScalars.Of(-1L), ScalarType.Int64, device);
        var beamIdx = runningBeamIdx.clone();
        var topNumBeamMask = cat([ones(beams, ScalarType.Bool, device), zeros(beamsToKeep - beams, ScalarType.Bool, device)], 0);
        var eosT = tensor(plan.Eos, device: device);
        var batchOffset = arange(HeldScalars.Of(batch), ScalarType.Int64, device).view(-1, 1).mul(HeldScalars.Of(beams));
        var mask = plan.Mask;
        int curLen = promptLen;

        static Tensor Gather(Tensor t, Tensor idx)
        {
            while (idx.dim() < t.dim()) idx = idx.unsqueeze(-1);
            return t.take_along_dim(idx, 1);
        }

        while (curLen < maxLen)
        {
            ct.ThrowIfCancellationRequested();
            using var step = NewDisposeScope();
            // a. forward, b. log-probs + processors + running scores
            var flat = running[.., .., ..curLen].reshape(batch * beams, curLen);
            var logits = stepper.Forward(flat, mask);                                        // [B·K, V]
            long vocab = logits.shape[1];
            var logProbs = processors.Process(flat, logits.log_softmax(-1));
            var accumulated = logProbs.view(batch, beams, vocab).add(runningScores.unsqueeze(-1), HeldScalars.One).view(batch, beams * vocab);
            // c. top continuations
            Tensor topLogProbs, topIndices;
            if (cfg.DoSample)
            {
                topIndices = multinomial(accumulated.softmax(-1), beamsToKeep, generator: generator);
                topLogProbs = accumulated.gather(1, topIndices);
            }
            else (topLogProbs, topIndices) = accumulated.topk(beamsToKeep, dim: -1);
            var topBeam = topIndices.floor_divide(HeldScalars.Of(vocab));
            var topIds = topIndices.remainder(HeldScalars.Of(vocab));
            var topRunningBeamIdx = Gather(runningBeamIdx, topBeam);
            var topRunning = Gather(running, topBeam);
            topRunning[.., .., curLen] = topIds;
            topRunningBeamIdx[.., .., curLen - promptLen] = topBeam.add(batchOffset, HeldScalars.One);
            // d. which continuations stop here (eos or length)
            var hits = curLen + 1 >= maxLen ? ones_like(topIds, ScalarType.Bool)
                     : plan.HasEos ? isin(topIds, eosT) : zeros_like(topIds, ScalarType.Bool);
            // e. the best unfinished continuations keep running
            var runningLogProbs = topLogProbs.add(hits.to_type(ScalarType.Float32).mul(HeldScalars.Of(-1e9f)), HeldScalars.One);
            var nextIdx = runningLogProbs.topk(beams, dim: -1).indexes;
            var newRunning = Gather(topRunning, nextIdx);
            var newRunningScores = Gather(runningLogProbs, nextIdx);
            var newRunningBeamIdx = Gather(topRunningBeamIdx, nextIdx);
            // f. merge the just-finished top candidates into the finished set
            var justFinished = hits.logical_and(topNumBeamMask.unsqueeze(0));
            var finScores = topLogProbs.div(HeldScalars.Of(Math.Pow(curLen + 1 - promptLen, cfg.LengthPenalty)));
            if (cfg.EarlyStopping) finScores = finScores.add(isFinished.all(-1, keepdim: true).to_type(ScalarType.Float32).mul(HeldScalars.Of(-1e9f)), HeldScalars.One);
            finScores = finScores.add(heuristicOpen.logical_not().to_type(ScalarType.Float32).mul(HeldScalars.Of(-1e9f)), HeldScalars.One);
            finScores = finScores.add(justFinished.logical_not().to_type(ScalarType.Float32).mul(HeldScalars.Of(-1e9f)), HeldScalars.One);
            var mergedScores = cat([beamScores, finScores], 1);
            var keep = mergedScores.topk(beams, dim: -1).indexes;
            var newSequences = Gather(cat([sequences, topRunning], 1), keep);
            var newBeamScores = Gather(mergedScores, keep);
            var newBeamIdx = Gather(cat([beamIdx, topRunningBeamIdx], 1), keep);
            var newFinished = Gather(cat([isFinished, justFinished], 1), keep);
            // g. next iteration: reorder the cache, grow the mask, check the stopping rule
            stepper.Reorder(newRunningBeamIdx[.., .., curLen - promptLen].reshape(-1));
            curLen++;
            double bestLen = curLen - promptLen;
            var bestRunning = newRunningScores[.., ..1].div(HeldScalars.Of(Math.Pow(bestLen, cfg.LengthPenalty)));
            var worstFinished = torch.where(newFinished, newBeamScores.min(1, keepdim: true).values, full_like(newBeamScores, HeldScalars.Of(-1e9f)));
            var newHeuristic = heuristicOpen.logical_and(bestRunning.gt(worstFinished).any(-1, keepdim: true));
            bool improvementPossible = newHeuristic.any().item<bool>();
            bool openBeam = !(cfg.EarlyStopping && newFinished.all().item<bool>());
            bool validContinuations = !hits.all().item<bool>();
            var newMask = cat([mask, ones(mask.shape[0], 1, ScalarType.Int64, device)], 1);

            running = newRunning.MoveToOuterDisposeScope();
            runningScores = newRunningScores.MoveToOuterDisposeScope();
            runningBeamIdx = newRunningBeamIdx.MoveToOuterDisposeScope();
            sequences = newSequences.MoveToOuterDisposeScope();
            beamScores = newBeamScores.MoveToOuterDisposeScope();
            beamIdx = newBeamIdx.MoveToOuterDisposeScope();
            isFinished = newFinished.MoveToOuterDisposeScope();
            heuristicOpen = newHeuristic.MoveToOuterDisposeScope();
            mask = newMask.MoveToOuterDisposeScope();
            if (!(improvementPossible && openBeam && validContinuations)) break;
        }

        // keep the best NumReturnSequences per prompt, cropped to the longest generated length
        int nrs = cfg.NumReturnSequences;
        var outSeq = sequences[.., ..nrs, ..].reshape(batch * nrs, maxLen);
        var outBeamIdx = beamIdx[.., ..nrs, ..].reshape(batch * nrs, maxLen - promptLen);
        long generated = outBeamIdx.add(HeldScalars.Of(1), HeldScalars.One).to_type(ScalarType.Bool).sum(1).max().item<long>();
        var result = outSeq[.., ..(int)(promptLen + generated)].contiguous();
        return result.MoveToOuterDisposeScope();
    }
}
