//! CRC-16/CCITT-FALSE, the checksum in data object 63: polynomial 0x1021, initial value
//! 0xFFFF, no reflection, no final XOR. It covers the payload's UTF-8 bytes up to and
//! including the literal `6304`.
//!
//! Every decode and every encode computes it over the whole payload, and one table lookup
//! per byte made it a quarter of a decode: each lookup waits for the one before. So it runs
//! "sliced by 8": eight tables, built at compile time, take eight bytes per step with
//! independent lookups. `TABLES[k][i]` is the CRC register for byte `i` followed by `k` zero
//! bytes; by linearity, the register after eight bytes is the XOR of one lookup per byte.

const POLYNOMIAL: u16 = 0x1021;
const INITIAL: u16 = 0xFFFF;
const SLICES: usize = 8;
const TABLES: [[u16; 256]; SLICES] = tables();

const fn tables() -> [[u16; 256]; SLICES] {
    let mut tables = [[0u16; 256]; SLICES];
    let mut byte = 0;
    while byte < 256 {
        let mut crc = (byte as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ POLYNOMIAL
            } else {
                crc << 1
            };
            bit += 1;
        }
        tables[0][byte] = crc;
        byte += 1;
    }
    let mut slice = 1;
    while slice < SLICES {
        let mut byte = 0;
        while byte < 256 {
            // One more zero byte through the register.
            let previous = tables[slice - 1][byte];
            tables[slice][byte] = (previous << 8) ^ tables[0][(previous >> 8) as usize];
            byte += 1;
        }
        slice += 1;
    }
    tables
}

/// CRC-16/CCITT-FALSE of `bytes`: `crc16(b"123456789") == 0x29B1`.
pub fn crc16(bytes: &[u8]) -> u16 {
    let mut crc = INITIAL;
    let mut chunks = bytes.chunks_exact(SLICES);
    for chunk in &mut chunks {
        let [high, low] = crc.to_be_bytes();
        let mut next = 0;
        for (index, &byte) in chunk.iter().enumerate() {
            // The register overlaps the first two bytes of the chunk.
            let byte = match index {
                0 => byte ^ high,
                1 => byte ^ low,
                _ => byte,
            };
            next ^= TABLES[SLICES - 1 - index][usize::from(byte)];
        }
        crc = next;
    }
    chunks.remainder().iter().fold(crc, |crc, &byte| {
        let index = usize::from((crc >> 8) as u8 ^ byte);
        (crc << 8) ^ TABLES[0][index]
    })
}

/// The same CRC one bit at a time, as the standard describes it: the tests check the tables
/// against it.
#[cfg(test)]
pub(crate) fn crc16_bitwise(bytes: &[u8]) -> u16 {
    let mut crc = INITIAL;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ POLYNOMIAL
            } else {
                crc << 1
            };
        }
    }
    crc
}
