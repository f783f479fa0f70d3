//! Every limit on what a file, an image, a request or an architecture may cost, in one place.
//!
//! Each reader computes what an input will cost from its header before allocating anything and
//! refuses past these limits with a one-line error that names the file and the limit. Together
//! they keep any input, however hostile, under about 1 GiB of memory: the largest legitimate
//! inputs (MNIST, a phone photo, the models this tool makes) are far below every one of them.

/// Model files (safetensors or `.pt`) larger than this are refused before being read. The seed
/// CNN is 1.4 MB; this allows 16 million parameters.
pub const MAX_MODEL_FILE_BYTES: u64 = 64 << 20;

/// Parameters in one network (params and gradients take 4 bytes each, twice this is 256 MiB).
pub const MAX_PARAMETERS: usize = 1 << 25;

/// Layers in one architecture.
pub const MAX_LAYERS: usize = 256;

/// The largest input side (height, width) or channel count of an architecture.
pub const MAX_INPUT_SIDE: usize = 4096;

/// Activation memory one image may need while predicting, counting every layer's output and its
/// scratch (see `model::SampleCost::inference_bytes`). The seed CNN needs about 0.4 MiB.
pub const MAX_BYTES_PER_SAMPLE: usize = 64 << 20;

/// Multiply-adds of one image's forward pass (the seed CNN's: 29 million). Bounds the time a
/// hostile architecture can make a single prediction take.
pub const MAX_MACS_PER_SAMPLE: u64 = 4 << 30;

/// Activation memory of one inference batch (`eval`, `predict`): batches are made smaller than
/// asked when a network's images are large, rather than allocating past this.
pub const INFERENCE_BATCH_BYTES: usize = 256 << 20;

/// Activation memory of one training batch: a `--batch-size` that needs more is refused before
/// the data is loaded. By this estimate the seed CNN needs about 1.2 MB an image (batch 650 at most).
pub const TRAINING_BATCH_BYTES: usize = 768 << 20;

/// Data bytes in one IDX file (MNIST's training images: 47 MB).
pub const MAX_IDX_BYTES: usize = 1 << 30;

/// One download of a dataset file, whichever downloader fetched it (MNIST's largest file is under
/// 10 MB compressed).
pub const MAX_DOWNLOAD_BYTES: usize = 64 << 20;

/// The pickle (`data.pkl`) of a `.pt` file.
pub const MAX_PICKLE_BYTES: u64 = 16 << 20;

/// Values on the pickle machine's stack, entries in its memo, and elements in all the lists,
/// tuples and dicts it builds together: bounds the work and memory of any pickle.
pub const MAX_PICKLE_VALUES: usize = 1 << 20;

/// How deeply a pickle may nest lists, tuples and dicts (a state_dict nests 4 deep).
pub const MAX_PICKLE_DEPTH: u32 = 64;

/// Pixels of a decoded image (a 48-megapixel phone photo is 8000x6000).
pub const MAX_IMAGE_PIXELS: u64 = 48_000_000;

/// Bytes the image decoder may allocate for one image (8-bit RGBA at 48 megapixels is 192 MB).
pub const MAX_IMAGE_DECODED_BYTES: u64 = 256 << 20;

/// Pixels and decoded bytes of an image sent to `serve`: several requests are decoded at once,
/// so each gets a quarter of a command-line image's budget.
pub const SERVE_IMAGE_PIXELS: u64 = 12_000_000;
pub const SERVE_IMAGE_DECODED_BYTES: u64 = 64 << 20;

/// Bytes of one request body to `serve`.
pub const SERVE_MAX_BODY: usize = 2 << 20;

/// Connections `serve` holds at once; more are closed as soon as they are accepted.
pub const SERVE_MAX_CONNECTIONS: usize = 256;

/// Seconds a client of `serve` has to send a request's headers (and the longest an idle
/// keep-alive connection is kept).
pub const SERVE_HEADER_TIMEOUT_SECS: u64 = 10;

/// Seconds a client of `serve` has to send a request's body.
pub const SERVE_BODY_TIMEOUT_SECS: u64 = 20;

/// Megabytes, rounded up, for messages.
pub fn mib(bytes: u64) -> u64 {
    bytes.div_ceil(1 << 20)
}
