//! The relay's unit tests and properties (bytes in = bytes out, half-close, buffers).

use super::mock::{Dst, Src};
use super::*;
use proptest::prelude::*;

proptest! {
    /// Whatever the pattern of short reads, short writes and WouldBlock, the destination
    /// receives exactly the source's bytes, then the half-close, and no buffer leaks.
    #[test]
    fn bytes_out_equal_bytes_in(
        data in prop::collection::vec(any::<u8>(), 0..100_000),
        chunks in prop::collection::vec(0usize..40_000, 1..8),
        sizes in prop::collection::vec(0usize..40_000, 1..8),
    ) {
        let mut chunks = chunks; chunks.push(1);
        let mut sizes = sizes; sizes.push(1);
        let mut src = Src { data: data.clone(), pos: 0, chunks, turn: 0 };
        let mut dst = Dst { out: Vec::new(), sizes, turn: 0, shut: false };
        let mut pool = BufPool::new(4);
        let mut pipe = Pipe::default();
        for _ in 0..1_000_000 {
            if pipe.done() { break; }
            // Readiness comes back each turn, as an edge-triggered poller would report it.
            let mut r = Readiness { read: true, write: true, hup: false, fin: false };
            let mut w = r;
            let mut budget = READS_PER_TURN;
            pipe.pump(&mut src, &mut dst, (&mut r, &mut w), false, &mut pool, &mut budget, None).unwrap();
        }
        prop_assert!(pipe.done());
        prop_assert_eq!(&dst.out, &data);
        prop_assert!(dst.shut);
        prop_assert_eq!(pipe.bytes, data.len() as u64);
        prop_assert_eq!(pool.out, 0);
    }
}

/// A source that always fills the buffer: each read asks for one size more, up to 256
/// KiB; a short write sends the next read back to 32 KiB; the bytes arrive exact.
#[test]
fn buffers_grow_while_reads_fill_them_and_shrink_after_a_short_write() {
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut src = Src {
        data: data.clone(),
        pos: 0,
        chunks: vec![usize::MAX],
        turn: 0,
    };
    let mut dst = Dst {
        out: Vec::new(),
        sizes: vec![usize::MAX],
        turn: 0,
        shut: false,
    };
    let mut pool = BufPool::new(4);
    let mut pipe = Pipe::default();
    let mut asked = Vec::new();
    for _ in 0..6 {
        let mut r = Readiness {
            read: true,
            write: true,
            hup: false,
            fin: false,
        };
        let mut w = r;
        let mut budget = 1;
        let before = src.pos;
        pipe.pump(
            &mut src,
            &mut dst,
            (&mut r, &mut w),
            false,
            &mut pool,
            &mut budget,
            None,
        )
        .unwrap();
        asked.push(src.pos - before);
    }
    let k = 1024;
    assert_eq!(
        asked,
        vec![32 * k, 64 * k, 128 * k, 256 * k, 256 * k, 256 * k]
    );
    // The destination takes 1,000 bytes at a time now: one more 256 KiB read, then (the
    // source having nothing new) the held bytes drain, and the next read is back to the
    // smallest size.
    dst.sizes = vec![1000];
    for turn in 0..400 {
        let mut r = Readiness {
            read: turn == 0,
            write: true,
            hup: false,
            fin: false,
        };
        let mut w = r;
        let mut budget = 1;
        pipe.pump(
            &mut src,
            &mut dst,
            (&mut r, &mut w),
            false,
            &mut pool,
            &mut budget,
            None,
        )
        .unwrap();
        if pipe.pending() == 0 {
            break;
        }
    }
    assert_eq!(pipe.pending(), 0);
    let before = src.pos;
    let (mut r, mut w) = (Readiness::default(), Readiness::default());
    (r.read, w.write) = (true, true);
    let mut budget = 1;
    dst.sizes = vec![usize::MAX];
    pipe.pump(
        &mut src,
        &mut dst,
        (&mut r, &mut w),
        false,
        &mut pool,
        &mut budget,
        None,
    )
    .unwrap();
    assert_eq!(
        src.pos - before,
        32 * k,
        "after a short write the next read is small"
    );
    assert_eq!(dst.out, data[..dst.out.len()], "bytes in order");
    assert_eq!(pool.out, 0, "no buffer held once written");
}

/// A grown buffer holding more than an upgrade's record carries stays with this process.
#[test]
fn a_direction_holding_more_than_one_small_buffer_is_not_moved() {
    let mut src = Src {
        data: vec![1; 1_000_000],
        pos: 0,
        chunks: vec![usize::MAX],
        turn: 0,
    };
    let mut dst = Dst {
        out: Vec::new(),
        sizes: vec![0],
        turn: 0,
        shut: false,
    };
    let mut pool = BufPool::new(4);
    let mut pipe = Pipe::default();
    pipe.user.class.after_read(BUF_SIZE, BUF_SIZE); // a stream: the next read is 64 KiB
    let (mut r, mut w) = (Readiness::default(), Readiness::default());
    (r.read, w.write) = (true, true);
    let mut budget = 1;
    pipe.pump(
        &mut src,
        &mut dst,
        (&mut r, &mut w),
        false,
        &mut pool,
        &mut budget,
        None,
    )
    .unwrap();
    assert_eq!(pipe.pending(), 64 * 1024);
    assert!(!pipe.movable());
    assert!(pipe.take_state(&mut pool).is_none());
    assert_eq!(pipe.pending(), 64 * 1024, "nothing taken");
}

#[test]
fn back_pressure_stops_reading() {
    let mut src = Src {
        data: vec![7; 200_000],
        pos: 0,
        chunks: vec![BUF_SIZE],
        turn: 0,
    };
    let mut dst = Dst {
        out: Vec::new(),
        sizes: vec![0],
        turn: 0,
        shut: false,
    };
    let mut pool = BufPool::new(4);
    let mut pipe = Pipe::default();
    let mut r = Readiness {
        read: true,
        write: true,
        hup: false,
        fin: false,
    };
    let mut w = r;
    let mut budget = READS_PER_TURN;
    pipe.pump(
        &mut src,
        &mut dst,
        (&mut r, &mut w),
        false,
        &mut pool,
        &mut budget,
        None,
    )
    .unwrap();
    // One buffer read, nothing written, reading stopped: memory stays at one buffer.
    assert_eq!(src.pos, BUF_SIZE);
    assert!(!w.write);
    assert!(r.read, "source readiness stays cached for later");
    assert_eq!(pool.out, 1);
}

#[test]
fn a_direction_moves_with_its_held_bytes_and_half_close() {
    let mut pool = BufPool::new(4);
    let mut src = Src {
        data: b"hello world".to_vec(),
        pos: 0,
        chunks: vec![11],
        turn: 0,
    };
    // The destination would block: the bytes stay held.
    let mut dst = Dst {
        out: Vec::new(),
        sizes: vec![0],
        turn: 0,
        shut: false,
    };
    let (mut r, mut w) = (Readiness::default(), Readiness::default());
    r.read = true;
    w.write = true;
    let mut p = Pipe::default();
    let mut budget = 1;
    let ready = (&mut r, &mut w);
    p.pump(
        &mut src,
        &mut dst,
        ready,
        false,
        &mut pool,
        &mut budget,
        None,
    )
    .unwrap();
    assert_eq!(p.pending(), 11);
    p.eof = true;
    let state = p.take_state(&mut pool).expect("no kernel pipe");
    assert_eq!(pool.out, 0, "the buffer went back");
    assert_eq!(state.pending, b"hello world");
    assert!(state.eof && !state.shut);
    let q = Pipe::restore(state, &mut pool).expect("fits");
    assert_eq!(q.pending(), 11);
    assert!(q.eof && !q.done());
    let too_big = PipeState {
        pending: vec![0; BUF_SIZE + 1],
        ..PipeState::default()
    };
    assert!(Pipe::restore(too_big, &mut pool).is_none());
}

/// A source holding `data` then its FIN, counting the reads it is asked for.
struct FinSrc {
    data: Vec<u8>,
    reads: usize,
}
impl Read for &mut FinSrc {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reads += 1;
        let n = buf.len().min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data.drain(..n);
        Ok(n)
    }
}

/// One turn of a direction whose source holds `len` bytes and its FIN; returns the reads
/// made, the bytes delivered and whether the half-close was passed on.
fn turn_at_fin(len: usize, fin: bool) -> (usize, Vec<u8>, bool) {
    let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
    let mut src = FinSrc { data, reads: 0 };
    let mut dst = Dst {
        out: Vec::new(),
        sizes: vec![usize::MAX],
        turn: 0,
        shut: false,
    };
    let mut pool = BufPool::new(4);
    let mut pipe = Pipe::default();
    let mut r = Readiness {
        read: true,
        write: false,
        hup: true,
        fin,
    };
    let mut w = Readiness {
        write: true,
        ..Readiness::default()
    };
    let mut budget = READS_PER_TURN;
    let ready = (&mut r, &mut w);
    (pipe.pump(
        &mut src,
        &mut dst,
        ready,
        false,
        &mut pool,
        &mut budget,
        None,
    ))
    .unwrap();
    assert!(pipe.done(), "the direction finished in one turn");
    assert_eq!(pool.out, 0, "no buffer kept");
    (src.reads, dst.out, dst.shut)
}

/// With the FIN known (and no urgent data), the short read that takes the last bytes is the
/// end of file: no read returning 0 is made; the bytes and the half-close are passed on.
#[test]
fn a_short_read_after_the_fin_is_the_end_of_file() {
    let (reads, out, shut) = turn_at_fin(100, true);
    assert_eq!(reads, 1);
    assert_eq!(out, (0..100).map(|i| i as u8).collect::<Vec<_>>());
    assert!(shut);
    // A read that fills the buffer says nothing: the next one is made (and returns 0).
    let (reads, out, shut) = turn_at_fin(BUF_SIZE, true);
    assert_eq!((reads, out.len(), shut), (2, BUF_SIZE, true));
}

/// A hang-up that is not a clean FIN (an error, urgent data: `fin` unset) keeps reading to
/// the read that returns 0.
#[test]
fn without_a_clean_fin_a_short_read_is_followed_by_another() {
    let (reads, out, shut) = turn_at_fin(100, false);
    assert_eq!((reads, out.len(), shut), (2, 100, true));
}
