// sk_conv2: conv2 engine: one winner per PHASES cycles, 25 taps x 8 / PHASES packed kernels in parallel
`default_nettype none
`timescale 1ns / 1ps

// Shapes (synthesis constants, the shipped conv2): input 64x14x14, 5x5 valid conv, 64 kernels,
// n_pack 8 (8 packed kernels = groups), output 64x10x10, 2x2 max-pool -> 64x5x5 = 1,600 values,
// requantise, k-WTA (k loaded at run time). Same streams and load bus as sk_fc.
//
// Scatter (one winner (ci, y, x, v) per cycle): the 25 taps reach outputs (oy, ox) = (y-ky, x-kx),
// whose residues (oy mod 5, ox mod 5) are all different. Accumulators are banked by that residue
// (25 banks) and by group (8): bank (rr, rc) of group g holds the 8 owners x 4 positions
// (oy = rr + 5*qy, ox = rc + 5*qx) of kernels g*8..g*8+7 (32 entries). Weights: one memory per tap
// (ky, kx) and group (25 x 8 LUT-RAM memories of 64 entries {owner, weight}, registered read at
// address ci). Stage A picks per bank the tap ky = (y-rr) mod 5, kx = (x-rc) mod 5 with two 5:1
// muxes (taps whose output falls outside 10x10 are masked) and registers per bank and group pair
// the packed multiplicand hi*2^18 + lo; stage C multiplies it by the value (200 uint7 x int8
// products in 100 multipliers, one DSP48 per group pair: P = v*lo + 2^18 v*hi, v*lo = P[16:0]
// sign-extended, v*hi = P[33:18] + P[17]) and registers {owner, qy, qx} and P; stage B does the
// read-modify-write on an asynchronously read LUT-RAM memory S in one cycle, so consecutive
// winners hitting the same accumulator need no forwarding.
// Word boundary: after the last winner, a 32-cycle copy reads every S entry into the readout
// memory R of the same bank (written only by the copy, read only by the readout) and clears S
// (S and R store acc - 1, so "clear" is -1 = 0 + 0 - 1 out of the same adder; readout adds 1);
// then the scatter of the next word proceeds while the readout reads R. Every memory has one
// write port and one read port (the reset clear sweep is a copy), so yosys maps them to LUT RAM;
// bank and tap selections are explicit AND-OR / case muxes (no variable part-selects of wide
// vectors, no variable `/` or `%`: yosys builds full-width dividers for those).
// Readout: 8 lanes, lane g handles the 8 kernels of group g (200 pooled values each, 2 cycles
// per value), lane g started g cycles after lane 0; per pooled value the 4 max-pool partners sit
// in 4 different banks: the 2 rows of the first column are read in one cycle, the 2 rows of the
// second column in the next; then bias, requantise (sk_requant per lane), a per-lane 128-bin
// histogram and a value memory of 200 rows x 8 values (row r = flat idx 8r..8r+7; the lane skew
// makes the lanes that finish a value in the same cycle write different columns).
// Threshold: scan the 8 summed histograms from 127 down (128 cycles, clears them).
// Select: one row (8 consecutive idx) per cycle: the winners of the row (v > T, or v == T while
// the tie budget k - count(v > T) lasts, in idx order; v == 0 never) are emitted one per cycle.
// Winner beat (46 bits): {end, tag, idx[15:0], c[10:0], y[4:0], x[4:0], val[6:0]}.
//
// PHASES (1 default, as above; 2 = half the hardware): a winner takes PHASES cycles, NL = 8 / PHASES
// groups per cycle (PHASES 2: groups 0-3 in the first cycle, 4-7 in the second; s_ready is low in the
// second). Everything per group above exists per "column" l = g mod NL instead: the weight memory
// of (tap, l) holds groups l and l + 4 at {phase, ci} (128 entries), the tap muxes, the {owner, qy, qx}
// registers, the multipliers (100 / PHASES DSPs) and the read-modify-write adders exist once per
// column, and the S / R memories of (bank, l) hold both groups at {phase, owner, qy, qx} (64 entries:
// the same bits, so the same LUT-RAM; one write per cycle, because the phases alternate). The copy
// takes 32 x PHASES cycles. Readout: NL lanes, lane l reads group l, then group l + NL (400 values,
// ~810 cycles at PHASES 2, still hidden under the ~3,000-cycle scatter), with its 16 kernels'
// bias / mult / shift at {q, kernel mod 8}; the value memory and select are unchanged. R is a
// single-port memory at PHASES 2 (the copy and the readout never overlap; RAM64X1S holds 64 bits
// per LUT, a 64 x 7 simple dual port 56).
// yosys (synth_xilinx xcup): PHASES 1 37.6k LUT / 11.3k FF / 116 DSP; PHASES 2 24.4k LUT / 5.8k FF /
// 58 DSP, 3,078 cycles/word on real words (PHASES 1: 1,541).
// WBRAM = 1: the weights in block RAM instead of LUT RAM. All weight memories are read at the same
// address, so they form one wide memory: 72-bit words of 4 entries x 18 bits (an entry is written
// with its 2 byte enables), 25 x NL / 4 RAMB36 (PHASES 2: 25, PHASES 1: 50), registered read as before.
// PHASES 2 + WBRAM: ~19.8k LUT, 25 RAMB36.
module sk_conv2 #(
    parameter LAYER_ID = 1,    // position of this layer in the weight image
    parameter ACC_W    = 26,   // accumulator bits (>= acc_bits of the model, 26 always safe)
    parameter PHASES   = 1,    // cycles per winner: 1 (8 groups a cycle) or 2 (groups 0-3, then 4-7)
    parameter WBRAM    = 0,    // 1: weights in block RAM (4 entries of 18 bits per 72-bit word) instead of LUT RAM
    parameter RBRAM    = 0     // 1: the readout copies R in block RAM (5 x NL memories of ACC_N x 5*ACC_W bits)
) (
    input  wire        clk,
    input  wire        rst,

    // weight load bus (broadcast from sk_loader)
    input  wire        ld_we,
    input  wire [1:0]  ld_layer,
    input  wire [2:0]  ld_sel,
    input  wire [7:0]  ld_group,
    input  wire [15:0] ld_addr,
    input  wire [31:0] ld_data,

    // winners in (conv1 output, ascending idx, then an end beat)
    input  wire [45:0] s_data,
    input  wire        s_valid,
    output wire        s_ready,

    // winners out (push; the receiving FIFO raises m_afull early enough for 2 more)
    output wire [45:0] m_data,
    output wire        m_push,
    input  wire        m_afull,

    output wire        busy,
    output wire        stall       // a winner waits for room downstream
);

localparam G     = 8;      // groups (packed kernels)
localparam NL    = G / PHASES;   // groups per scatter cycle = readout lanes (8 or 4)
localparam NB    = 25;     // residue banks
localparam NBG   = NB * NL;
localparam AW    = (PHASES == 2) ? 6 : 5;   // accumulator address {phase, owner, qy, qx}
localparam ACC_N = 32 * PHASES;             // accumulator entries per bank memory
localparam WAW   = (PHASES == 2) ? 7 : 6;   // weight address {phase, ci}
localparam RC_END = 400 * PHASES + NL + 4 + RBRAM;  // readout cycle when the last lane's value is requantised

initial begin
    if (PHASES != 1 && PHASES != 2) begin
        $error("sk_conv2: PHASES must be 1 or 2 (%m)");
        $finish;
    end
end
localparam EW    = 11;     // weight entry {owner[2:0], weight[7:0]}
localparam NROW  = 200;    // value-memory rows (1600 / 8)

// small constant divisions as tables / shift-add (yosys maps a variable `%` or `/` to a full-width
// divider of carry chains, 32 bits wide when the divisor is an unsized constant)
// v % 5 for v in 0..31: a constant table (a case statement becomes a ROM that yosys maps to FFs)
localparam [95:0] MOD5_TAB = {3'd1,3'd0,3'd4,3'd3,3'd2,3'd1,3'd0,3'd4,3'd3,3'd2,3'd1,3'd0,3'd4,3'd3,3'd2,3'd1,3'd0,3'd4,3'd3,3'd2,3'd1,3'd0,3'd4,3'd3,3'd2,3'd1,3'd0,3'd4,3'd3,3'd2,3'd1,3'd0};
function [2:0] mod5(input [4:0] v);
    mod5 = MOD5_TAB[v*3 +: 3];
endfunction
function [2:0] div5(input [4:0] v);   // v / 5 for v in 0..24
    if (v >= 5'd20) div5 = 3'd4;
    else if (v >= 5'd15) div5 = 3'd3;
    else if (v >= 5'd10) div5 = 3'd2;
    else if (v >= 5'd5) div5 = 3'd1;
    else div5 = 3'd0;
endfunction
// verilator lint_off UNUSEDSIGNAL
function [6:0] div25(input [10:0] v); // v / 25 for v in 0..1599: (v * 1311) >> 15
    reg [21:0] m;
    begin
        m = {11'd0, v} + {10'd0, v, 1'b0} + {9'd0, v, 2'b0} + {8'd0, v, 3'b0} + {7'd0, v, 4'b0}
            + {3'd0, v, 8'b0} + {1'd0, v, 10'b0};
        div25 = m[21:15];
    end
endfunction
function [4:0] rem25(input [10:0] v, input [6:0] q);   // v - 25 q
    reg [10:0] d;
    begin
        d = v - ({4'd0, q} + {1'd0, q, 3'd0} + {q, 4'd0});
        rem25 = d[4:0];
    end
endfunction
// verilator lint_on UNUSEDSIGNAL

// ---------------------------------------------------------------- control state
localparam [1:0] SC_CLEAR = 2'd0, SC_RUN = 2'd1, SC_WAIT = 2'd2, SC_COPY = 2'd3;
localparam [2:0] RO_IDLE = 3'd0, RO_READ = 3'd1, RO_THRESH = 3'd2, RO_SELECT = 3'd3, RO_END = 3'd4;

reg [1:0]  sc_state_reg = SC_CLEAR;
reg [2:0]  ro_state_reg = RO_IDLE;
reg [7:0]  clr_reg = 0;
reg        sc_tag_reg = 1'b0, ro_tag_reg = 1'b0;
reg [31:0] k_reg = 0;

wire clr_active = (sc_state_reg == SC_CLEAR);
wire cp_active = clr_active || (sc_state_reg == SC_COPY);   // S -> R copy (clears S)

// ---------------------------------------------------------------- load bus (registered, f -> ci, tap)
reg        ldw_reg = 1'b0;
reg [5:0]  ld_ci_reg = 0;
reg [4:0]  ld_t_reg = 0;
reg [2:0]  ld_g_reg = 0;
reg [EW-1:0] ld_e_reg = 0;
wire [6:0] ld_ci = div25(ld_addr[10:0]);
always @(posedge clk) begin
    ldw_reg   <= ld_we && ld_layer == LAYER_ID && ld_sel == 3'd0;
    ld_ci_reg <= ld_ci[5:0];
    ld_t_reg  <= rem25(ld_addr[10:0], ld_ci);
    ld_g_reg  <= ld_group[2:0];
    ld_e_reg  <= ld_data[EW-1:0];
    if (ld_we && ld_layer == LAYER_ID && ld_sel == 3'd4) begin
        k_reg <= ld_data;
    end
end
wire ld_here = ld_we && ld_layer == LAYER_ID;
// group g -> lane / memory column gh = g mod NL and phase g / NL
wire [2:0] ld_gh = (PHASES == 2) ? {1'b0, ld_g_reg[1:0]} : ld_g_reg;
wire [6:0] ld_wa = (PHASES == 2) ? {ld_g_reg[2], ld_ci_reg} : {1'b0, ld_ci_reg};

// ---------------------------------------------------------------- scatter input
wire s_end = s_data[45];
reg  p1_reg = 1'b0;                // PHASES 2: the second half (groups 4-7) of the winner taken last cycle
reg  [5:0] ci_hold_reg = 0;
assign s_ready = (sc_state_reg == SC_RUN) && !p1_reg;
wire s_take = s_valid && s_ready;
wire iss = (s_take && !s_end) || p1_reg;                       // a scatter half issued this cycle
wire [6:0] w_ra = p1_reg ? {1'b1, ci_hold_reg} : {1'b0, s_data[22:17]};   // weight read {phase, ci}

reg        a_valid_reg = 1'b0;     // stage A: weights of all taps / groups read at ci
reg        a_ph_reg = 1'b0, c_ph_reg = 1'b0, b_ph_reg = 1'b0;   // phase (PHASES 2) of stage A / C / B
reg [4:0]  a_y_reg = 0, a_x_reg = 0;
reg [6:0]  a_val_reg = 0;
reg        c_any_reg;              // stage C (tap selected, multiplying) holds a winner
reg [6:0]  c_val_reg;
reg        b_any_reg = 1'b0;       // stage B (read-modify-write) holds a winner

always @(posedge clk) begin
    a_valid_reg <= iss;
    p1_reg <= (PHASES == 2) && s_take && !s_end;
    a_ph_reg <= (PHASES == 2) && p1_reg;
    c_ph_reg <= a_ph_reg;
    b_ph_reg <= c_ph_reg;
    if (s_take) begin
        a_y_reg   <= s_data[16:12];
        a_x_reg   <= s_data[11:7];
        a_val_reg <= s_data[6:0];
        ci_hold_reg <= s_data[22:17];
    end
    c_any_reg <= a_valid_reg;
    c_val_reg <= a_valid_reg ? a_val_reg : 7'd0;   // 0 when empty: P = 0 (the copy relies on it)
    b_any_reg <= c_any_reg;
    if (rst) begin
        a_valid_reg <= 1'b0;
        p1_reg <= 1'b0;
        c_any_reg <= 1'b0;
        b_any_reg <= 1'b0;
    end
end

// weight memories: tap t = ky*5 + kx, column gh (groups gh + NL*phase), address {phase, ci}
// (one write, one registered read: LUT RAM; PHASES 2: 128 entries, read at phase 0 then phase 1)
wire [25*NL*EW-1:0] wq_flat;
genvar t, g, r, b, e;
generate
if (WBRAM) begin : wb
    // WBRAM: all weight memories are read at the same address, so they are one wide memory: words of
    // 4 entries (tap, column) x 18 bits (11 used: 2 block-RAM byte enables of 9 bits per entry),
    // 25 x NL / 4 memories of 72 bits (PHASES 2: 25 of 128 x 72, one RAMB36 each)
    localparam NE = 25 * NL;
    localparam NW = (NE + 3) / 4;
    wire [7:0] ld_e_idx = ld_t_reg * NL + ld_gh;
    for (t = 0; t < NW; t = t + 1) begin : wword
        (* ram_style = "block" *) reg [71:0] wmem [0:64*PHASES-1];
        reg [71:0] wq_reg = 0;
        wire [1:0] ld_sub = ld_e_idx[1:0];
        wire       ld_this = ldw_reg && ld_e_idx[7:2] == t;
        always @(posedge clk) begin
            if (ld_this && ld_sub == 2'd0) wmem[ld_wa[WAW-1:0]][17:0]  <= {7'd0, ld_e_reg};
            if (ld_this && ld_sub == 2'd1) wmem[ld_wa[WAW-1:0]][35:18] <= {7'd0, ld_e_reg};
            if (ld_this && ld_sub == 2'd2) wmem[ld_wa[WAW-1:0]][53:36] <= {7'd0, ld_e_reg};
            if (ld_this && ld_sub == 2'd3) wmem[ld_wa[WAW-1:0]][71:54] <= {7'd0, ld_e_reg};
            if (s_take || p1_reg) begin
                wq_reg <= wmem[w_ra[WAW-1:0]];
            end
        end
        for (e = 0; e < 4; e = e + 1) begin : went
            if (4 * t + e < NE) begin : used
                assign wq_flat[(4*t+e)*EW +: EW] = wq_reg[e*18 +: EW];
            end
        end
    end
end else begin : wl
for (t = 0; t < 25; t = t + 1) begin : wtap
    for (g = 0; g < NL; g = g + 1) begin : wgrp
        reg [EW-1:0] wmem [0:64*PHASES-1];
        reg [EW-1:0] wq_reg = 0;
        always @(posedge clk) begin
            if (ldw_reg && ld_t_reg == t && ld_gh == g) begin
                wmem[ld_wa[WAW-1:0]] <= ld_e_reg;
            end
            if (s_take || p1_reg) begin
                wq_reg <= wmem[w_ra[WAW-1:0]];
            end
        end
        assign wq_flat[(t*NL+g)*EW +: EW] = wq_reg;
    end
end
end
endgenerate

// stage A: per row residue rr the tap row ky = (y - rr) mod 5, output row oy = y - ky in {rr, rr+5}
wire [14:0] ky_flat, kx_flat;
wire [4:0]  rv, cv, rq, cq;        // tap valid / upper half (oy >= 5) per row and column residue
generate
for (r = 0; r < 5; r = r + 1) begin : resid
    localparam [4:0] R5 = r;
    wire [4:0] ky = {2'd0, mod5(a_y_reg + 5'd5 - R5)};
    wire [4:0] kx = {2'd0, mod5(a_x_reg + 5'd5 - R5)};
    wire [4:0] oy = a_y_reg - ky;
    wire [4:0] ox = a_x_reg - kx;
    assign ky_flat[r*3 +: 3] = ky[2:0];
    assign kx_flat[r*3 +: 3] = kx[2:0];
    if (r == 0) begin : r0
        assign rv[r] = (oy <= 5'd9);
        assign cv[r] = (ox <= 5'd9);
    end else begin : rn
        assign rv[r] = (a_y_reg >= r) && (oy <= 5'd9);
        assign cv[r] = (a_x_reg >= r) && (ox <= 5'd9);
    end
    assign rq[r] = (oy >= 5'd5);
    assign cq[r] = (ox >= 5'd5);
end
endgenerate

// stage C registers: per bank valid, per bank and group {owner, qy, qx}, per bank and group pair
// the packed multiplicand; stage B registers: the same with the product
localparam GP = NL / 2;            // group pairs per scatter cycle (one multiplier each)
reg  [NB-1:0]     c_valid_reg = 0;
reg  [NBG*5-1:0]  c_addr_reg = 0;
reg  [NB-1:0]     b_valid_reg = 0;
reg  [NBG*5-1:0]  b_addr_reg = 0;
wire [NB*GP*34-1:0] b_p_flat;      // per bank and pair: P = v * (hi*2^18 + lo) (|P| < 2^32)

// tap selection in two 5:1 steps: per row residue the tap row ky (all 5 kx x 8 groups), then per
// bank the tap column kx
localparam TROW = 5 * NL * EW;
localparam TCOL = NL * EW;
wire [5*TROW-1:0] wrow_flat;
generate
for (r = 0; r < 5; r = r + 1) begin : sa_row
    reg [TROW-1:0] wrow;
    always @* begin
        case (ky_flat[r*3 +: 3])
            3'd0:    wrow = wq_flat[0*TROW +: TROW];
            3'd1:    wrow = wq_flat[1*TROW +: TROW];
            3'd2:    wrow = wq_flat[2*TROW +: TROW];
            3'd3:    wrow = wq_flat[3*TROW +: TROW];
            default: wrow = wq_flat[4*TROW +: TROW];
        endcase
    end
    assign wrow_flat[r*TROW +: TROW] = wrow;
end
for (b = 0; b < NB; b = b + 1) begin : sa_bank
    localparam RR = b / 5, RC = b % 5;
    wire [TROW-1:0] wrow = wrow_flat[RR*TROW +: TROW];
    reg  [TCOL-1:0] wsel;
    always @* begin
        case (kx_flat[RC*3 +: 3])
            3'd0:    wsel = wrow[0*TCOL +: TCOL];
            3'd1:    wsel = wrow[1*TCOL +: TCOL];
            3'd2:    wsel = wrow[2*TCOL +: TCOL];
            3'd3:    wsel = wrow[3*TCOL +: TCOL];
            default: wsel = wrow[4*TCOL +: TCOL];
        endcase
    end
    always @(posedge clk) begin
        c_valid_reg[b] <= a_valid_reg && rv[RR] && cv[RC];
        b_valid_reg[b] <= c_valid_reg[b];
        if (rst) begin
            c_valid_reg[b] <= 1'b0;
            b_valid_reg[b] <= 1'b0;
        end
    end
    for (g = 0; g < NL; g = g + 1) begin : sa_grp
        always @(posedge clk) begin
            c_addr_reg[(b*NL+g)*5 +: 5] <= {wsel[g*EW+8 +: 3], rq[RR], cq[RC]};
            b_addr_reg[(b*NL+g)*5 +: 5] <= c_addr_reg[(b*NL+g)*5 +: 5];
        end
    end
    for (g = 0; g < GP; g = g + 1) begin : sa_pair
        // multiplicand hi*2^18 + lo of groups 2g (lo) and 2g+1 (hi): bits [17:0] = lo sign-extended,
        // bits [26:18] = hi - (lo < 0) (in -129..127: 9 bits, hi = -128 with lo < 0 must not wrap)
        wire [7:0]  w_lo = wsel[(2*g)*EW +: 8];
        wire [7:0]  w_hi = wsel[(2*g+1)*EW +: 8];
        wire [8:0]  hi_adj = {w_hi[7], w_hi} - {8'd0, w_lo[7]};
        reg  [26:0] c_a_reg;
        reg  [33:0] b_p_reg;
        wire signed [33:0] pm = $signed(c_a_reg) * $signed({1'b0, c_val_reg});
        always @(posedge clk) begin
            c_a_reg <= {hi_adj, {10{w_lo[7]}}, w_lo};
            b_p_reg <= pm;
        end
        assign b_p_flat[(b*GP+g)*34 +: 34] = b_p_reg;
    end
end
endgenerate

// ---------------------------------------------------------------- readout lanes: counters
// lane 0 counters; lane l sees them delayed by l cycles. Lane l reads the groups l + NL*q,
// q = 0 .. PHASES-1, one after the other (200 pooled values each).
reg        rc_active_reg = 1'b0;
reg [9:0]  rc_reg = 0;             // readout cycle
reg [7:0]  l0_t_reg = 0;           // pooled value of the group: s*25 + py*5 + px
reg        l0_q_reg = 1'b0;        // group phase q (PHASES 2)
reg [2:0]  l0_s_reg = 0, l0_py_reg = 0, l0_px_reg = 0;
reg        l0_ph_reg;              // 2 cycles per pooled value: column ox0, then ox0 + 1
wire       l0_v = (ro_state_reg == RO_READ) && rc_active_reg;

reg [NL-2:0]     dl_v_reg = 0;     // lanes 1..NL-1 (lane 0 reads the counters directly)
reg [(NL-1)*8-1:0] dl_t_reg = 0;
reg [(NL-1)*3-1:0] dl_s_reg = 0, dl_py_reg = 0, dl_px_reg = 0;
reg [NL-2:0]     dl_ph_reg, dl_q_reg;
wire [NL-1:0]   ln_v  = {dl_v_reg, l0_v};
wire [NL*8-1:0] ln_t  = {dl_t_reg, l0_t_reg};
wire [NL*3-1:0] ln_s  = {dl_s_reg, l0_s_reg};
wire [NL*3-1:0] ln_py = {dl_py_reg, l0_py_reg};
wire [NL*3-1:0] ln_px = {dl_px_reg, l0_px_reg};
wire [NL-1:0]   ln_ph = {dl_ph_reg, l0_ph_reg};
wire [NL-1:0]   ln_q  = {dl_q_reg, l0_q_reg};
always @(posedge clk) begin
    dl_v_reg  <= ln_v[NL-2:0];
    dl_t_reg  <= ln_t[(NL-1)*8-1:0];
    dl_s_reg  <= ln_s[(NL-1)*3-1:0];
    dl_py_reg <= ln_py[(NL-1)*3-1:0];
    dl_px_reg <= ln_px[(NL-1)*3-1:0];
    dl_ph_reg <= ln_ph[NL-2:0];
    dl_q_reg  <= ln_q[NL-2:0];
    if (rst) begin
        dl_v_reg <= 0;
    end
end

// per lane l and bank b: readout address {q, s, qr, qc} (the low AW bits)
wire [NBG*6-1:0]     ro_addr_flat;  // index l*NB + b
wire [NBG*ACC_W-1:0] roq_flat;      // readout-copy data, index b*NL + l

// ---------------------------------------------------------------- accumulator memories
// one S and one R memory per bank and column l: group l + NL*phase at {phase, owner, qy, qx}
wire [NBG*ACC_W-1:0] sq_flat;       // S read data (the copy's source), index b*NL + l
generate
for (b = 0; b < NB; b = b + 1) begin : acc_bank
    for (g = 0; g < NL; g = g + 1) begin : acc_grp
        // S: the scatter's accumulators (one read-modify-write port); R: the readout copy, written
        // only by the S -> R copy (which also clears S), read only by the readout lane
        reg [ACC_W-1:0] sm [0:ACC_N-1];
        wire [5:0] sc_a6 = {b_ph_reg, b_addr_reg[(b*NL+g)*5 +: 5]};
        wire [AW-1:0] sc_a = sc_a6[AW-1:0];
        wire [AW-1:0] ro_a = ro_addr_flat[(g*NB+b)*6 +: AW];
        wire [AW-1:0] sa = cp_active ? clr_reg[AW-1:0] : sc_a;
        wire       swe = cp_active || b_valid_reg[b];
        wire [ACC_W-1:0] sq = sm[sa];
        assign sq_flat[(b*NL+g)*ACC_W +: ACC_W] = sq;
        // S and R hold T = acc - 1, so the copy clears S to T = -1 through the adder itself
        // (P is 0 while the pipeline is empty): sd = p + T + pc normally, p - 1 + pc = -1 in the
        // copy; written as p - (~T & m) - 1 (+ pc), which maps to one LUT per bit on the carry chain.
        // This group's product from its pair's P: lo = P[16:0], hi = P[33:18] + P[17].
        wire [ACC_W-1:0] keep = {ACC_W{!cp_active}};
        wire [ACC_W-1:0] sd;
        if (g % 2 == 0) begin : plo
            wire [16:0] p = b_p_flat[(b*GP+g/2)*34 +: 17];
            assign sd = {{(ACC_W-17){p[16]}}, p} - (~sq & keep) - {{(ACC_W-1){1'b0}}, 1'b1};
        end else begin : phi
            wire [15:0] p = b_p_flat[(b*GP+g/2)*34+18 +: 16];
            wire        pc = b_p_flat[(b*GP+g/2)*34+17];
            assign sd = {{(ACC_W-16){p[15]}}, p} - (~sq & keep) - {{(ACC_W-1){1'b0}}, 1'b1}
                        + {{(ACC_W-1){1'b0}}, pc};
        end
        always @(posedge clk) begin
            if (swe) begin
                sm[sa] <= sd;
            end
        end
        if (RBRAM) begin : rbb
            // R in block RAM (rbram below)
        end else if (PHASES == 2) begin : r1p
            reg [ACC_W-1:0] rm [0:ACC_N-1];
            // the copy (RO_IDLE) and the readout never overlap: one address, a single-port memory
            // (64 deep: RAM64X1S, 64 bits per LUT, instead of 56 for a 64 x 7 simple dual port)
            wire [AW-1:0] ra = cp_active ? clr_reg[AW-1:0] : ro_a;
            always @(posedge clk) begin
                if (cp_active) begin
                    rm[ra] <= sq;
                end
            end
            assign roq_flat[(b*NL+g)*ACC_W +: ACC_W] = rm[ra];
        end else begin : r2p
            reg [ACC_W-1:0] rm [0:ACC_N-1];
            always @(posedge clk) begin
                if (cp_active) begin
                    rm[clr_reg[AW-1:0]] <= sq;
                end
            end
            assign roq_flat[(b*NL+g)*ACC_W +: ACC_W] = rm[ro_a];
        end
    end
end
endgenerate

// RBRAM = 1: R in block RAM, one memory per lane l and row residue rr (the 5 banks of a row residue
// are read at the same address by a lane: 64 words of 5 x ACC_W bits), registered read: the lane
// logic below sees the data one cycle after the address (RBRAM delays it by one cycle)
generate
if (RBRAM) begin : rbram
    for (g = 0; g < NL; g = g + 1) begin : rl
        for (r = 0; r < 5; r = r + 1) begin : rr
            (* ram_style = "block" *) reg [5*ACC_W-1:0] rbm [0:ACC_N-1];
            reg [5*ACC_W-1:0] rbq_reg = 0;
            wire [5*ACC_W-1:0] wd;
            wire [AW-1:0] ro_a = ro_addr_flat[(g*NB+r*5)*6 +: AW];
            for (e = 0; e < 5; e = e + 1) begin : col
                assign wd[e*ACC_W +: ACC_W] = sq_flat[((r*5+e)*NL+g)*ACC_W +: ACC_W];
                assign roq_flat[((r*5+e)*NL+g)*ACC_W +: ACC_W] = rbq_reg[e*ACC_W +: ACC_W];
            end
            always @(posedge clk) begin
                if (cp_active) begin
                    rbm[clr_reg[AW-1:0]] <= wd;
                end
                rbq_reg <= rbm[ro_a];
            end
        end
    end
end
endgenerate

// ---------------------------------------------------------------- readout lanes: pool, bias, requantise
function signed [ACC_W-1:0] smax(input signed [ACC_W-1:0] x0, input signed [ACC_W-1:0] x1);
    smax = (x0 > x1) ? x0 : x1;
endfunction

wire [NL-1:0]   rq_valid;
wire [NL*7-1:0] rq_y;
wire [NL*8-1:0] rq_t;
wire [NL*8-1:0] rq_va;             // value-memory row of the requantised value: g*25 + t/8

generate
for (g = 0; g < NL; g = g + 1) begin : lane
    wire       v  = ln_v[g];
    wire [2:0] s  = ln_s[g*3 +: 3];
    wire       q  = ln_q[g];
    wire [3:0] oy0 = {ln_py[g*3 +: 3], 1'b0};
    wire [3:0] ox0 = {ln_px[g*3 +: 3], 1'b0};
    wire [3:0] ry0 = {1'b0, mod5({1'b0, oy0})}, ry1 = {1'b0, mod5({1'b0, oy0} + 5'd1)};
    wire [3:0] rx0 = {1'b0, mod5({1'b0, ox0})}, rx1 = {1'b0, mod5({1'b0, ox0} + 5'd1)};
    wire [4:0] qr;
    for (r = 0; r < 5; r = r + 1) begin : res
        assign qr[r] = (ry0 == r) ? (oy0 >= 4'd5) : (oy0 + 4'd1 >= 4'd5);
    end
    wire       ph = ln_ph[g];
    wire [3:0] oxp = ox0 + {3'd0, ph};                 // the column read in this cycle
    wire       qcp = (oxp >= 4'd5);
    for (b = 0; b < NB; b = b + 1) begin : bk
        assign ro_addr_flat[(g*NB+b)*6 +: 6] = {q, s, qr[b/5], qcp};
    end
    // the 2 partners of this cycle: banks (ry0|ry1, rxp) of this lane, selected by one-hot AND-OR
    // muxes (first the column per row residue, then the two rows); the pool is the max over 2 cycles
    wire [4:0] hy0, hy1, hxp;
    wire [3:0] rxp = ph ? rx1 : rx0;
    for (r = 0; r < 5; r = r + 1) begin : oh
        assign hy0[r] = (ry0 == r);
        assign hy1[r] = (ry1 == r);
        assign hxp[r] = (rxp == r);
    end
    // RBRAM: R is read one cycle after its address, so everything behind the read is one cycle later
    reg  [4:0] hy0_d = 0, hy1_d = 0, hxp_d = 0;
    reg        v_d = 1'b0, ph_d = 1'b0, q_d = 1'b0;
    reg  [2:0] s_d = 0;
    reg  [7:0] t_d = 0;
    always @(posedge clk) begin
        hy0_d <= hy0;  hy1_d <= hy1;  hxp_d <= hxp;
        v_d <= v;  ph_d <= ph;  q_d <= q;  s_d <= s;  t_d <= ln_t[g*8 +: 8];
        if (rst) v_d <= 1'b0;
    end
    wire [4:0] hy0u = RBRAM ? hy0_d : hy0, hy1u = RBRAM ? hy1_d : hy1, hxpu = RBRAM ? hxp_d : hxp;
    wire       vu = RBRAM ? v_d : v, phu = RBRAM ? ph_d : ph, qu = RBRAM ? q_d : q;
    wire [2:0] su = RBRAM ? s_d : s;
    wire [7:0] tu = RBRAM ? t_d : ln_t[g*8 +: 8];
    reg [5*ACC_W-1:0] cx;          // per row residue: the bank of column rxp
    reg [ACC_W-1:0]   q0, q1;
    integer bi, ci;
    always @* begin
        cx = 0;
        for (bi = 0; bi < NB; bi = bi + 1) begin
            cx[(bi/5)*ACC_W +: ACC_W] = cx[(bi/5)*ACC_W +: ACC_W]
                | (roq_flat[(bi*NL+g)*ACC_W +: ACC_W] & {ACC_W{hxpu[bi%5]}});
        end
        q0 = 0;
        q1 = 0;
        for (ci = 0; ci < 5; ci = ci + 1) begin
            q0 = q0 | (cx[ci*ACC_W +: ACC_W] & {ACC_W{hy0u[ci]}});
            q1 = q1 | (cx[ci*ACC_W +: ACC_W] & {ACC_W{hy1u[ci]}});
        end
    end
    wire signed [ACC_W-1:0] pmax = smax(q0, q1);
    reg  signed [ACC_W-1:0] pm0_reg;                // max of the first column
    always @(posedge clk) begin
        pm0_reg <= pmax;
    end
    wire signed [ACC_W-1:0] pool = smax(pm0_reg, pmax);

    // bias / mult / shift of this lane's kernels: group g + NL*q' at {q', kernel mod 8}
    localparam PD = 8 * PHASES;
    reg [31:0] bias_mem [0:PD-1];
    reg [15:0] mult_mem [0:PD-1];
    reg [5:0]  shift_mem [0:PD-1];
    reg [31:0] bias_q_reg = 0;
    reg [15:0] mult_q_reg = 0;
    reg [5:0]  shift_q_reg = 0;
    // kernel o = ld_addr[5:0] belongs to group o / 8: this lane when (o / 8) mod NL == g
    wire       ld_lane = (PHASES == 2) ? (ld_addr[4:3] == g) : (ld_addr[5:3] == g);
    wire [3:0] ld_pa4 = {ld_addr[5], ld_addr[2:0]};
    wire [3:0] rd_pa4 = {qu, su};
    wire [3:0] ld_pa = (PHASES == 2) ? ld_pa4 : {1'b0, ld_addr[2:0]};
    wire [3:0] rd_pa = (PHASES == 2) ? rd_pa4 : {1'b0, su};
    always @(posedge clk) begin
        if (ld_here && ld_lane && ld_sel == 3'd1) bias_mem[ld_pa[PHASES+1:0]] <= ld_data;
        if (ld_here && ld_lane && ld_sel == 3'd2) mult_mem[ld_pa[PHASES+1:0]] <= ld_data[15:0];
        if (ld_here && ld_lane && ld_sel == 3'd3) shift_mem[ld_pa[PHASES+1:0]] <= ld_data[5:0];
        bias_q_reg  <= bias_mem[rd_pa[PHASES+1:0]];
        mult_q_reg  <= mult_mem[rd_pa[PHASES+1:0]];
        shift_q_reg <= shift_mem[rd_pa[PHASES+1:0]];
    end

    reg        r1_v_reg = 1'b0, r2_v_reg = 1'b0;
    reg signed [ACC_W-1:0] r1_pool_reg = 0;
    reg signed [31:0] r2_acc_reg = 0;
    reg [15:0] r2_mult_reg = 0;
    reg [5:0]  r2_shift_reg = 0;
    reg [7:0]  r1_t_reg = 0, r2_t_reg = 0, r3_t_reg = 0, r4_t_reg = 0, r5_t_reg = 0;
    reg        r1_q_reg = 0, r2_q_reg = 0, r3_q_reg = 0, r4_q_reg = 0, r5_q_reg = 0;
    always @(posedge clk) begin
        r1_v_reg     <= vu && phu;
        r1_pool_reg  <= pool;
        r1_t_reg     <= tu;
        r1_q_reg     <= qu;
        r2_v_reg     <= r1_v_reg;
        r2_acc_reg   <= {{(32-ACC_W){r1_pool_reg[ACC_W-1]}}, r1_pool_reg} + $signed(bias_q_reg) + 32'sd1;  // T + 1
        r2_mult_reg  <= mult_q_reg;
        r2_shift_reg <= shift_q_reg;
        r2_t_reg     <= r1_t_reg;
        r3_t_reg     <= r2_t_reg;
        r4_t_reg     <= r3_t_reg;
        r5_t_reg     <= r4_t_reg;
        r2_q_reg     <= r1_q_reg;
        r3_q_reg     <= r2_q_reg;
        r4_q_reg     <= r3_q_reg;
        r5_q_reg     <= r4_q_reg;
        if (rst) begin
            r1_v_reg <= 1'b0;
            r2_v_reg <= 1'b0;
        end
    end
    sk_requant #(.ACC_W(32)) requant_inst (
        .clk(clk), .in_valid(r2_v_reg), .acc(r2_acc_reg), .mult(r2_mult_reg), .shift(r2_shift_reg),
        .out_valid(rq_valid[g]), .y(rq_y[g*7 +: 7])
    );
    assign rq_t[g*8 +: 8] = r5_t_reg;
    localparam [7:0] VBASE = g * 25;
    localparam [7:0] VBASE1 = (g + NL) * 25;          // group g + NL (PHASES 2)
    assign rq_va[g*8 +: 8] = (r5_q_reg ? VBASE1 : VBASE) + {3'd0, r5_t_reg[7:3]};
end
endgenerate

wire rq_take = (ro_state_reg == RO_READ);   // requantiser output counts only during a readout

// ---------------------------------------------------------------- histograms (one per lane)
reg  [7:0]    th_t_reg = 0;
wire [NL*11-1:0] hq_flat;
generate
for (g = 0; g < NL; g = g + 1) begin : hist_lane
    reg [10:0] hist [0:127];
    wire [6:0] y = rq_y[g*7 +: 7];
    wire [6:0] ha = (ro_state_reg == RO_THRESH) ? th_t_reg[6:0] : y;
    wire [10:0] hq = hist[ha];
    // one write port: the reset clear sweep, the clear behind the threshold scan, or the count
    wire [6:0]  hwa = clr_active ? clr_reg[6:0] : ha;
    wire        hwe = clr_active || (ro_state_reg == RO_THRESH) || (rq_take && rq_valid[g]);
    wire [10:0] hwd = (clr_active || ro_state_reg == RO_THRESH) ? 11'd0 : hq + 11'd1;
    always @(posedge clk) begin
        if (hwe) begin
            hist[hwa] <= hwd;
        end
    end
    assign hq_flat[g*11 +: 11] = hq;
end
endgenerate

reg [14:0] th_cnt;
integer hi;
always @* begin
    th_cnt = 0;
    for (hi = 0; hi < NL; hi = hi + 1) begin
        th_cnt = th_cnt + hq_flat[hi*11 +: 11];
    end
end

// ---------------------------------------------------------------- value memory: 8 columns x 200 rows
reg  [7:0]  sel_row_reg = 0;      // next row to load
wire [55:0] vrow;                 // values of row sel_row_reg (column j at bits 7j)
genvar j;
generate
for (j = 0; j < 8; j = j + 1) begin : vcol
    reg [6:0] vmem [0:NROW-1];
    // the lane skew makes at most one lane write column j per cycle: one write port
    reg       vwe;
    reg [7:0] vwa;
    reg [6:0] vwd;
    integer li;
    always @* begin
        vwe = 1'b0;
        vwa = 0;
        vwd = 0;
        for (li = 0; li < NL; li = li + 1) begin
            if (rq_valid[li] && rq_t[li*8 +: 3] == j) begin
                vwe = 1'b1;
                vwa = rq_va[li*8 +: 8];
                vwd = rq_y[li*7 +: 7];
            end
        end
    end
    always @(posedge clk) begin
        if (rq_take && vwe) begin
            vmem[vwa] <= vwd;
        end
    end
    assign vrow[j*7 +: 7] = vmem[sel_row_reg];
end
endgenerate

// ---------------------------------------------------------------- threshold and select
reg        th_found_reg = 1'b0;
reg [31:0] th_above_reg = 0;
reg [6:0]  thr_reg = 0;
reg [31:0] ties_reg = 0;
wire [31:0] th_ge = th_above_reg + th_cnt;

reg [7:0]  mask_reg = 0;           // winners of the current row still to emit
reg [55:0] cur_vals_reg = 0;
reg [7:0]  cur_row_reg = 0;

// win mask of the row being loaded
reg [7:0]  new_mask;
reg [3:0]  new_ties;
integer wi;
always @* begin
    new_mask = 0;
    new_ties = 0;
    for (wi = 0; wi < 8; wi = wi + 1) begin
        if (vrow[wi*7 +: 7] != 0) begin
            if (vrow[wi*7 +: 7] > thr_reg) begin
                new_mask[wi] = 1'b1;
            end else if (vrow[wi*7 +: 7] == thr_reg && ties_reg > new_ties) begin
                new_mask[wi] = 1'b1;
                new_ties = new_ties + 1'b1;
            end
        end
    end
end

wire       sel_go = (ro_state_reg == RO_SELECT) && !m_afull;
wire       load_row = sel_go && mask_reg == 0 && sel_row_reg != NROW;
wire [7:0] emask = (mask_reg != 0) ? mask_reg : new_mask;
wire [55:0] evals = (mask_reg != 0) ? cur_vals_reg : vrow;
wire [7:0] erow = (mask_reg != 0) ? cur_row_reg : sel_row_reg;
wire [7:0] elow = emask & (~emask + 8'd1);          // lowest set bit
reg  [2:0] ej;
integer ei;
always @* begin
    ej = 0;
    for (ei = 7; ei >= 0; ei = ei - 1) begin
        if (elow[ei]) ej = ei;
    end
end
wire        emit = sel_go && emask != 0 && (mask_reg != 0 || load_row);
wire [10:0] e_idx = {erow, ej};
wire [6:0]  e_q = div25(e_idx);
wire [10:0] e_c = {4'd0, e_q};
wire [4:0]  e_p = rem25(e_idx, e_q);
wire [4:0]  e_y = {2'd0, div5(e_p)};
wire [4:0]  e_x = {2'd0, mod5(e_p)};
wire [6:0]  e_val = evals[ej*7 +: 7];

reg [45:0] m_data_reg = 0;
reg        m_push_reg = 1'b0;
assign m_data = m_data_reg;
assign m_push = m_push_reg;

// ---------------------------------------------------------------- control
always @(posedge clk) begin
    m_push_reg <= 1'b0;

    // scatter side
    case (sc_state_reg)
        SC_CLEAR: begin
            clr_reg <= clr_reg + 1'b1;
            if (clr_reg == 8'd127) begin
                sc_state_reg <= SC_RUN;
            end
        end
        SC_RUN: begin
            if (s_take && s_end) begin
                sc_tag_reg <= s_data[44];
                sc_state_reg <= SC_WAIT;
            end
        end
        SC_WAIT: begin
            // last winner written back, previous word's readout finished: copy S to R
            if (!a_valid_reg && !c_any_reg && !b_any_reg && ro_state_reg == RO_IDLE) begin
                clr_reg <= 0;
                sc_state_reg <= SC_COPY;
            end
        end
        SC_COPY: begin
            // entry clr_reg of every bank: R <= S, S <= 0 (32 x PHASES cycles, the scatter waits)
            clr_reg <= clr_reg + 1'b1;
            if (clr_reg == ACC_N - 1) begin
                ro_tag_reg <= sc_tag_reg;
                ro_state_reg <= RO_READ;
                rc_reg <= 0;
                rc_active_reg <= 1'b1;
                l0_t_reg <= 0;
                l0_q_reg <= 1'b0;
                l0_s_reg <= 0;
                l0_py_reg <= 0;
                l0_px_reg <= 0;
                l0_ph_reg <= 1'b0;
                sc_state_reg <= SC_RUN;
            end
        end
    endcase

    // readout side (RO_IDLE: started by the scatter side above)
    case (ro_state_reg)
        RO_IDLE: begin
        end
        RO_READ: begin
            rc_reg <= rc_reg + 1'b1;
            if (rc_active_reg) begin
                l0_ph_reg <= !l0_ph_reg;
            end
            if (rc_active_reg && l0_ph_reg) begin
                l0_t_reg <= l0_t_reg + 1'b1;
                if (l0_px_reg == 3'd4) begin
                    l0_px_reg <= 0;
                    if (l0_py_reg == 3'd4) begin
                        l0_py_reg <= 0;
                        l0_s_reg <= l0_s_reg + 1'b1;
                    end else begin
                        l0_py_reg <= l0_py_reg + 1'b1;
                    end
                end else begin
                    l0_px_reg <= l0_px_reg + 1'b1;
                end
                if (l0_t_reg == 8'd199) begin
                    // the 200 values of a group done: next group phase, or the lane is finished
                    l0_t_reg <= 0;
                    l0_q_reg <= (PHASES == 2);
                    if (PHASES == 1 || l0_q_reg) begin
                        rc_active_reg <= 1'b0;
                    end
                end
            end
            // lane NL-1 reads its last value at rc 400 PHASES + NL - 2; requantised 5 cycles later
            if (rc_reg == RC_END) begin
                ro_state_reg <= RO_THRESH;
                th_t_reg <= 8'd127;
                th_found_reg <= 1'b0;
                th_above_reg <= 0;
                thr_reg <= 0;
                ties_reg <= 0;
            end
        end
        RO_THRESH: begin
            // T = largest t with count(v >= t) >= k; ties = k - count(v > T)
            if (!th_found_reg && th_ge >= k_reg) begin
                th_found_reg <= 1'b1;
                thr_reg <= th_t_reg[6:0];
                ties_reg <= k_reg - th_above_reg;
            end
            th_above_reg <= th_ge;
            th_t_reg <= th_t_reg - 1'b1;
            if (th_t_reg == 0) begin
                ro_state_reg <= RO_SELECT;
                sel_row_reg <= 0;
                mask_reg <= 0;
            end
        end
        RO_SELECT: begin
            if (load_row) begin
                sel_row_reg <= sel_row_reg + 1'b1;
                cur_row_reg <= sel_row_reg;
                cur_vals_reg <= vrow;
                ties_reg <= ties_reg - new_ties;
            end
            if (emit) begin
                mask_reg <= emask & ~elow;
                m_push_reg <= 1'b1;
                m_data_reg <= {1'b0, 1'b0, 5'd0, e_idx, e_c, e_y, e_x, e_val};
            end
            if (sel_go && mask_reg == 0 && sel_row_reg == NROW) begin
                ro_state_reg <= RO_END;
            end
        end
        RO_END: begin
            if (!m_afull) begin
                m_push_reg <= 1'b1;
                m_data_reg <= {1'b1, ro_tag_reg, 44'd0};
                ro_state_reg <= RO_IDLE;
            end
        end
        default: ro_state_reg <= RO_IDLE;
    endcase

    if (rst) begin
        sc_state_reg <= SC_CLEAR;
        ro_state_reg <= RO_IDLE;
        clr_reg <= 0;
        rc_active_reg <= 1'b0;
        mask_reg <= 0;
        m_push_reg <= 1'b0;
    end
end

assign busy = (sc_state_reg != SC_RUN) || p1_reg || a_valid_reg || c_any_reg || b_any_reg || (ro_state_reg != RO_IDLE);
assign stall = (ro_state_reg == RO_SELECT || ro_state_reg == RO_END) && m_afull;

endmodule

`resetall
