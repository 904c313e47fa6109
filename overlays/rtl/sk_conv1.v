// sk_conv1: dense-input conv1 engine: word beats in -> conv1 + pool + requant + k-WTA winners out
`default_nettype none
`timescale 1ns / 1ps

// Replaced sk_word_in + the generic scatter layer engine for conv1 (docs/hardware.md).
//
// Input: 128 beats of 8 pixels per word (pixel (h, w) in byte h*32 + w), with
// the framing of sk_word_in: TLAST on beat 127 is the word's tag, TLAST on any
// other beat drops the partial word, bytes >= 0x80 count as 0. Two-word buffer.
//
// Conv (one output position every PHASES cycles, all 64 kernels): a 5-row
// register line buffer feeds a 5x5 window shift register; 16/PHASES packed
// kernels x 25 taps = 400/PHASES products (uint7 x int8) per cycle (PHASES
// = 2: kernels 0..31, then 32..63; PHASES = 4: 100 products, ~2x the cycles)
// in 200/PHASES DSP48E2: packed kernels 2q and 2q+1 share the tap's pixel v, so
// one multiplier computes both (P = v * (hi*2^18 + lo), as in sk_conv2; the
// multiplicand's hi - (lo < 0), 9 bits, is stored at load time);
// each product is routed by its stored owner to kernel g*4 + owner and summed
// (two adder-tree stages of two-input adders; the carries P[17] of the hi
// products are their carry-ins) -> 64/PHASES sums of ACC_W bits. The next word's first
// 5 rows are primed while the last output row of a word is computed. 2x2 max-pool
// on the fly: the horizontal max of a column pair is written (even row) or
// max-merged (odd row) into a pooled-row buffer of three slots (3 x 14 positions
// x 64 sums, one LUT-RAM per phase: the requant of one row pair overlaps the conv
// of the next ones without stalling it).
// Area (yosys synth_xilinx): the weights are per-entry registers written one
// entry per load cycle, read through a PHASES:1 mux of constant selects; the
// owner is stored as a one-hot mask at load time and becomes the synchronous
// reset of 4 product registers per tap (one per owner; for a hi product also
// of its carry bit), so the 4 x 16/PHASES adder trees (row sums of 5, rows 3
// and 4 added in the same stage, then 4 -> 1; all two-input adders, each input
// narrower than its sum: otherwise yosys merges them into a $macc of ~2x the
// LUTs) add plain register outputs. No
// address arithmetic on register arrays and no variable part-selects on wide
// vectors: every multi-way select is a small mux of constant part-selects.
// Requant: 16/PHASES lanes, lane l owns CPL = 4*PHASES consecutive channels;
// per pooled row a lane handles 14 positions x CPL channels in 56*PHASES
// cycles (= the conv's 2 output rows), adding the bias and requantising
// (sk_requant), writing the value into its value memory (word = one pooled row
// (c, y) of 14 cells, double-buffered by word) and its 128-bin histogram
// (double-buffered by word).
// Threshold: per word, 128 cycles scanning the summed lane histograms from the
// top (T = largest t with count(v >= t) >= k, ties = k - count(v > T)).
// Select: reads one 14-cell value word per cycle in index order (c, y), marks
// the winners (v > T, or v == T within the remaining tie budget in index
// order; zeros never win), queues non-empty words, and an emitter sends one
// winner beat per cycle (ascending idx), then the end beat with the tag.
// Production (conv + requant) of word n+1 overlaps threshold + select of word n.
//
// Winner beat (46 bits): {end, tag, idx[15:0], c[10:0], y[4:0], x[4:0], val[6:0]},
// idx = c*196 + y*14 + x. Load bus (layer 0): ld_sel 0 entry (ld_group g,
// ld_addr f = ky*5+kx, ld_data = weight | owner << 8), 1 bias, 2 mult, 3 shift
// (ld_addr = kernel), 4 k. The entries must come group-major (the weight image's
// and sk_loader's order): the odd group's entry of a tap is adjusted by the sign
// of the even group's entry written before it.
module sk_conv1 #(
    parameter LAYER_ID = 0,
    parameter ACC_W    = 20,    // conv sums without bias: 25 * 127 * 128 < 2^19 (>= 20)
    parameter PHASES   = 2      // cycles per conv position: 1 (400 multipliers), 2 (200, half the kernels a cycle) or 4 (100)
) (
    input  wire        clk,
    input  wire        rst,

    input  wire        ld_we,
    input  wire [1:0]  ld_layer,
    input  wire [2:0]  ld_sel,
    input  wire [7:0]  ld_group,
    input  wire [15:0] ld_addr,
    input  wire [31:0] ld_data,

    input  wire [63:0] s_axis_tdata,
    input  wire        s_axis_tvalid,
    output wire        s_axis_tready,
    input  wire        s_axis_tlast,

    output wire [45:0] m_data,
    output wire        m_push,
    input  wire        m_afull,

    output wire        in_busy,     // words held or being received in the input buffer
    output wire        busy,
    output wire        stall        // a winner waits for room downstream
);

localparam G   = 16;   // packed kernels
localparam NT  = 25;   // taps
localparam OC  = 64;   // kernels
localparam GA  = G / PHASES;     // packed kernels computed per cycle
localparam OCA = OC / PHASES;    // kernel sums per cycle
localparam NL  = 16 / PHASES;    // requant lanes (one pooled row in 56 * PHASES cycles, like the conv)
localparam CPL = OC / NL;        // channels per lane
localparam JW  = $clog2(CPL);    // channel-in-lane bits
localparam VD  = 2 * CPL * 14;   // value words per lane (two word slots)
localparam AW  = $clog2(VD);     // value word address bits
localparam PHW = (PHASES > 2) ? 2 : 1;   // phase counter bits
localparam [PHW-1:0] PH_LAST = (PHASES == 1) ? {PHW{1'b0}} : {PHW{1'b1}};   // the last phase
localparam HW  = $clog2(CPL * 196 + 1);   // histogram count bits
localparam QD  = 32;   // select queue depth (power of two): lets the scan run ahead of the emitter
localparam QAW = $clog2(QD);

initial begin
    if (PHASES != 1 && PHASES != 2 && PHASES != 4) begin
        $error("sk_conv1: PHASES must be 1, 2 or 4 (%m)");
        $finish;
    end
    if (ACC_W < 20) begin
        $error("sk_conv1: ACC_W must be at least 20 (%m)");
        $finish;
    end
end

wire ld_here = ld_we && ld_layer == LAYER_ID;

// ================================================================ input buffer (sk_word_in framing)
reg [63:0] in_mem [0:255];
reg [6:0]  wcnt_reg = 0;
reg        wslot_reg = 1'b0, rslot_reg = 1'b0;
reg [1:0]  in_full_reg = 2'b00;
reg [1:0]  in_tag_reg = 2'b00;
assign s_axis_tready = !in_full_reg[wslot_reg];
wire in_take = s_axis_tvalid && s_axis_tready;

// ================================================================ weights and per-kernel parameters
// Weights are read in parallel every cycle, so each (packed kernel, tap) entry is a plain register
// written in the cycle after its load write (one-hot decoded group and tap: no read mux, no
// address arithmetic); the owner is stored decoded as a one-hot mask (no runtime demux).
// Packed kernels 2p (lo) and 2p+1 (hi) share one multiplier per tap (see "multiply" below), which
// needs hi - (lo < 0) in the multiplicand: the odd entry stores that 9-bit value, computed on the
// load path from the sign of the even entry of the same tap. The loader writes the entries
// group-major (the weight image's order), so the even group's entry of a tap is always written
// before the odd group's: lsign_reg keeps the sign of the last even-group write per tap.
// bias / mult / shift live in the requant lane that owns the channel (lane = channel / CPL).
reg [31:0] k_reg = 0;
reg        lw_v_reg;
reg [G-1:0]  lw_g_reg;
reg [NT-1:0] lw_t_reg;
reg        lw_odd_reg;
reg [7:0]  lw_w_reg;
reg [3:0]  lw_m_reg;
reg [NT-1:0] lsign_reg = 0;          // per tap: the sign of the weight last written for an even group
wire [G*NT*9-1:0] wt_w;              // weight of entry g*NT + t (odd g: hi - (lo < 0), 9 bits)
wire [G*NT*4-1:0] wt_m;              // owner mask of entry g*NT + t
wire       lw_lsign = |(lsign_reg & lw_t_reg);
wire [8:0] lw_w9 = {lw_w_reg[7], lw_w_reg} - {8'd0, lw_odd_reg & lw_lsign};
always @(posedge clk) begin
    lw_v_reg <= ld_here && ld_sel == 3'd0 && ld_group < G && ld_addr < NT;
    lw_g_reg <= {{(G-1){1'b0}}, 1'b1} << ld_group[3:0];
    lw_t_reg <= {{(NT-1){1'b0}}, 1'b1} << ld_addr[4:0];
    lw_odd_reg <= ld_group[0];
    lw_w_reg <= ld_data[7:0];
    lw_m_reg <= 4'd1 << ld_data[9:8];
    if (lw_v_reg && !lw_odd_reg) lsign_reg <= (lsign_reg & ~lw_t_reg) | (lw_t_reg & {NT{lw_w_reg[7]}});
    if (ld_here && ld_sel == 3'd4) k_reg <= ld_data;
    if (rst) lw_v_reg <= 1'b0;
end
genvar wg, wtp;
generate
for (wg = 0; wg < G; wg = wg + 1) begin : wgrp
    for (wtp = 0; wtp < NT; wtp = wtp + 1) begin : wtap
        reg [3:0] m_q;
        always @(posedge clk) begin
            if (lw_v_reg && lw_g_reg[wg] && lw_t_reg[wtp]) begin
                m_q <= lw_m_reg;
            end
        end
        if (wg % 2 == 1) begin : whi
            reg [8:0] w_q;
            always @(posedge clk) begin
                if (lw_v_reg && lw_g_reg[wg] && lw_t_reg[wtp]) begin
                    w_q <= lw_w9;
                end
            end
            assign wt_w[(wg*NT + wtp)*9 +: 9] = w_q;
        end else begin : wlo
            reg [7:0] w_q;
            always @(posedge clk) begin
                if (lw_v_reg && lw_g_reg[wg] && lw_t_reg[wtp]) begin
                    w_q <= lw_w_reg;
                end
            end
            assign wt_w[(wg*NT + wtp)*9 +: 9] = {w_q[7], w_q};
        end
        assign wt_m[(wg*NT + wtp)*4 +: 4] = m_q;
    end
end
endgenerate

// ================================================================ row loader and conv control
// The loader fills new_reg with one input row (4 beats) at a time. Priming commits the first 5 rows
// of a word into row_reg; the run then commits rows 5..31 at the end of output rows 0..26 (row_reg
// and the window win_reg). After row 31 the input slot is free and row_reg is not needed any more
// (the last output row uses win_reg only), so the next word primes while this word finishes.
localparam [1:0] P_IDLE = 2'd0, P_PRIME = 2'd1, P_READY = 2'd2, P_FEED = 2'd3;
reg [1:0]   pst_reg = P_IDLE;
reg         ptag_reg = 1'b0;         // tag of the word being primed
reg         run_reg = 1'b0;          // a word is in the conv
reg         ctag_reg = 1'b0;         // its tag
reg [4:0]   oy_reg = 0, ox_reg = 0;
reg [PHW-1:0] ph_reg = 0;            // phase p: kernels p*OCA .. p*OCA + OCA-1
wire        ph_last = (ph_reg == PH_LAST);
reg [2:0]   prime_reg = 0;           // rows committed while priming
reg [223:0] row_reg [0:4];           // 5 input rows, 32 pixels x 7 bits
reg [223:0] win_reg [0:4];           // the rows of the window, shifted by ox pixels
reg [223:0] new_reg = 0;             // the next row being loaded
reg         new_valid_reg = 1'b0;
reg         ld_act_reg = 1'b0;
reg [4:0]   ld_row_reg = 0;
reg [2:0]   ld_beat_reg = 0;         // next beat to fetch (4: all fetched)
reg         f1_reg = 1'b0;           // a fetched beat arrives
reg [1:0]   f1_beat_reg = 0;
reg [63:0]  in_q_reg = 0;
reg [2:0]   pbf_reg = 3'b000;        // pooled-row buffer slot full (3 slots)
reg [1:0]   c_slot_reg = 0;          // pooled-row slot the current row pair writes

wire ld_fetch = ld_act_reg && !new_valid_reg && ld_beat_reg < 3'd4;
always @(posedge clk) begin
    if (in_take) in_mem[{wslot_reg, wcnt_reg}] <= s_axis_tdata;
    if (ld_fetch) in_q_reg <= in_mem[{rslot_reg, ld_row_reg, ld_beat_reg[1:0]}];
end

// one beat -> 8 pixels of 7 bits (bytes >= 0x80 count as 0)
function [55:0] beat_px(input [63:0] b);
    integer i;
    begin
        for (i = 0; i < 8; i = i + 1) beat_px[i*7 +: 7] = b[i*8+7] ? 7'd0 : b[i*8 +: 7];
    end
endfunction

wire        c_row_ok = (ox_reg != 0) || oy_reg[0] || !pbf_reg[c_slot_reg];
wire        c_new_ok = !(ox_reg == 5'd27 && oy_reg != 5'd27 && !new_valid_reg);
wire        c_issue = run_reg && (ph_reg != 0 || (c_row_ok && c_new_ok));
wire        c_step = c_issue && ph_last;                  // the last phase of a position: move on
wire        c_end = c_step && ox_reg == 5'd27 && oy_reg == 5'd27;
wire        prime_commit = (pst_reg == P_PRIME) && new_valid_reg;
wire        run_commit = c_step && ox_reg == 5'd27 && oy_reg != 5'd27;
wire        commit = prime_commit || run_commit;
wire        run_start = (pst_reg == P_READY) && (!run_reg || c_end);

integer r;
always @(posedge clk) begin
    // input write side
    if (in_take) begin
        if (wcnt_reg == 7'd127) begin
            in_full_reg[wslot_reg] <= 1'b1;
            in_tag_reg[wslot_reg] <= s_axis_tlast;
            wslot_reg <= !wslot_reg;
            wcnt_reg <= 0;
        end else if (s_axis_tlast) begin
            wcnt_reg <= 0;                     // framing error: drop the partial word
        end else begin
            wcnt_reg <= wcnt_reg + 1'b1;
        end
    end

    // row loader
    f1_reg <= ld_fetch;
    f1_beat_reg <= ld_beat_reg[1:0];
    if (ld_fetch) ld_beat_reg <= ld_beat_reg + 1'b1;
    if (f1_reg) begin
        new_reg[f1_beat_reg*56 +: 56] <= beat_px(in_q_reg);
        if (f1_beat_reg == 2'd3) new_valid_reg <= 1'b1;
    end
    if (commit) begin
        for (r = 0; r < 4; r = r + 1) row_reg[r] <= row_reg[r+1];
        row_reg[4] <= new_reg;
        new_valid_reg <= 1'b0;
        if (ld_row_reg == 5'd31) begin
            ld_act_reg <= 1'b0;
        end else begin
            ld_row_reg <= ld_row_reg + 1'b1;
            ld_beat_reg <= 0;
        end
    end
    // window: reload at a new output row, shift by one pixel per position
    if (run_start) begin
        for (r = 0; r < 5; r = r + 1) win_reg[r] <= row_reg[r];
    end else if (run_commit) begin
        for (r = 0; r < 4; r = r + 1) win_reg[r] <= row_reg[r+1];
        win_reg[4] <= new_reg;
    end else if (c_step) begin
        for (r = 0; r < 5; r = r + 1) win_reg[r] <= {7'd0, win_reg[r][223:7]};
    end

    // loader ownership: prime the next word, then feed the running one until its row 31
    case (pst_reg)
        P_IDLE: begin
            if (in_full_reg[rslot_reg]) begin
                pst_reg <= P_PRIME;
                ptag_reg <= in_tag_reg[rslot_reg];
                ld_act_reg <= 1'b1;
                ld_row_reg <= 0;
                ld_beat_reg <= 0;
                prime_reg <= 0;
            end
        end
        P_PRIME: begin
            if (prime_commit) begin
                prime_reg <= prime_reg + 1'b1;
                if (prime_reg == 3'd4) pst_reg <= P_READY;
            end
        end
        P_READY: begin
            if (run_start) pst_reg <= P_FEED;
        end
        P_FEED: begin
            if (run_commit && ld_row_reg == 5'd31) begin
                pst_reg <= P_IDLE;                 // all rows are in registers: free the input slot
                in_full_reg[rslot_reg] <= 1'b0;
                rslot_reg <= !rslot_reg;
            end
        end
    endcase

    // conv position counters
    if (c_issue && PHASES > 1) ph_reg <= ph_last ? {PHW{1'b0}} : ph_reg + 1'b1;
    if (c_step) begin
        if (ox_reg == 5'd27) begin
            ox_reg <= 0;
            oy_reg <= oy_reg + 1'b1;
            if (oy_reg[0]) c_slot_reg <= (c_slot_reg == 2'd2) ? 2'd0 : c_slot_reg + 1'b1;
            if (oy_reg == 5'd27) run_reg <= 1'b0;
        end else begin
            ox_reg <= ox_reg + 1'b1;
        end
    end
    if (run_start) begin
        run_reg <= 1'b1;
        ctag_reg <= ptag_reg;
        oy_reg <= 0;
        ox_reg <= 0;
        ph_reg <= 0;
    end

    if (rst) begin
        wcnt_reg <= 0;
        wslot_reg <= 1'b0;
        rslot_reg <= 1'b0;
        in_full_reg <= 2'b00;
        pst_reg <= P_IDLE;
        run_reg <= 1'b0;
        c_slot_reg <= 0;
        ph_reg <= 0;
        ld_act_reg <= 1'b0;
        new_valid_reg <= 1'b0;
        f1_reg <= 1'b0;
    end
end

// ================================================================ multiply, route, sum
// stage 1: products; stage 2: per-kernel partial sums of window rows 0, 1, 2 and 3 + 4; stage 3: sums
reg        s1_v = 1'b0, s2_v = 1'b0, s3_v = 1'b0;
reg [4:0]  s1_oy = 0, s1_ox = 0, s2_oy = 0, s2_ox = 0, s3_oy = 0, s3_ox = 0;
reg        s1_tag = 0, s2_tag = 0, s3_tag = 0;
reg [PHW-1:0] s1_ph = 0, s2_ph = 0, s3_ph = 0;
reg [1:0]  s1_sl = 0, s2_sl = 0, s3_sl = 0;
localparam PW = 18;    // a window row's sum of 5 products: 5 * 127 * 128 < 2^17
localparam GPA = GA / 2;         // packed-kernel pairs per cycle: one multiplier (DSP48E2) per pair and tap
// product of (group gg, tap t) for owner s at ((gg*NT + t)*4 + s)*15: the product where the tap's
// owner is s, else 0 (15-bit signed: |uint7 x int8| <= 127 * 128). The mask becomes the register's
// synchronous reset, so the adder trees below take plain register outputs.
// Two products per multiplier: groups gg = 2q (lo) and 2q+1 (hi) share the tap's pixel v, so one
// DSP48E2 computes P = v * (hi*2^18 + lo) (multiplicand bits [17:0] = lo sign-extended, [26:18] =
// hi - (lo < 0), stored so at load time): v*lo = P[14:0] (15-bit signed), v*hi = P[32:18] + P[17].
// The carry P[17] of a hi product is kept (owner-masked like the product, cy_flat) and enters the
// adder tree as the carry-in of an adder: each row's 4 adders take taps 0..3 of the row, the
// adder of rows 3 + 4 takes tap 19, the 3 adders of the last stage take taps 4, 9, 14; tap 24
// (the 25th carry: 24 adders) is added to its product before the mask (one 15-bit increment per
// pair).
reg [15*4*GA*NT-1:0] prod_flat = 0;
reg [4*GA*NT-1:0]  cy_flat = 0;  // carry of (group gg, tap t, owner s) at (gg*NT + t)*4 + s (0 for lo groups)
localparam KPW = 4 * PW + 1;      // stage 2 per kernel: rows 0, 1, 2 (PW bits each), rows 3 + 4 (PW + 1)
reg [3*GA*4-1:0]   cy2_flat = 0; // the carries of taps 4, 9, 14 one stage later: (gg*4 + s)*3 + row
reg [KPW*OCA-1:0]  part_flat = 0;
reg [ACC_W*OCA-1:0] sum_flat = 0;

// a 15-bit signed product sign-extended to PW bits
function [PW-1:0] sx(input [14:0] v);
    sx = {{(PW-15){v[14]}}, v};
endfunction
// a PW-bit signed row sum sign-extended to ACC_W bits
function [ACC_W-1:0] sxa(input [PW-1:0] v);
    sxa = {{(ACC_W-PW){v[PW-1]}}, v};
endfunction

genvar gq, gg, tt, ss, kr;
generate
for (gq = 0; gq < GPA; gq = gq + 1) begin : mpair
    for (tt = 0; tt < NT; tt = tt + 1) begin : mtap
        wire [6:0] px = win_reg[tt / 5][(tt % 5)*7 +: 7];
        // weights and owner masks of packed kernels ph*GA + 2gq (lo) and + 2gq+1 (hi): PHASES:1 muxes
        // of constant part-selects
        reg [7:0] wl;
        reg [8:0] wh;
        reg [3:0] ml, mh;
        integer pq;
        always @(*) begin
            wl = wt_w[((2*gq)*NT + tt)*9 +: 8];
            wh = wt_w[((2*gq+1)*NT + tt)*9 +: 9];
            ml = wt_m[((2*gq)*NT + tt)*4 +: 4];
            mh = wt_m[((2*gq+1)*NT + tt)*4 +: 4];
            for (pq = 1; pq < PHASES; pq = pq + 1) begin
                if (ph_reg == pq[PHW-1:0]) begin
                    wl = wt_w[((pq*GA + 2*gq)*NT + tt)*9 +: 8];
                    wh = wt_w[((pq*GA + 2*gq+1)*NT + tt)*9 +: 9];
                    ml = wt_m[((pq*GA + 2*gq)*NT + tt)*4 +: 4];
                    mh = wt_m[((pq*GA + 2*gq+1)*NT + tt)*4 +: 4];
                end
            end
        end
        wire [26:0] ma = {wh, {10{wl[7]}}, wl};     // hi*2^18 + lo
        /* verilator lint_off UNUSEDSIGNAL */
        wire signed [34:0] pm = $signed(ma) * $signed({1'b0, px});    // |P| < 2^32
        /* verilator lint_on UNUSEDSIGNAL */
        wire [14:0] plo = pm[14:0];
        wire [14:0] phi;
        if (tt == NT - 1) begin : hinc
            assign phi = pm[32:18] + {14'd0, pm[17]};
        end else begin : hflr
            assign phi = pm[32:18];               // floor(v*hi - carry); the carry goes into the tree
        end
        for (ss = 0; ss < 4; ss = ss + 1) begin : mown
            always @(posedge clk) begin
                prod_flat[(((2*gq)*NT + tt)*4 + ss)*15 +: 15] <= ml[ss] ? plo : 15'd0;
                prod_flat[(((2*gq+1)*NT + tt)*4 + ss)*15 +: 15] <= mh[ss] ? phi : 15'd0;
                cy_flat[((2*gq+1)*NT + tt)*4 + ss] <= (tt != NT - 1) && mh[ss] && pm[17];
            end
        end
    end
end
for (gg = 0; gg < GA; gg = gg + 1) begin : mgrp
    for (ss = 0; ss < 4; ss = ss + 1) begin : mker
        wire [PW*5-1:0] rsum;        // per window row kr: the sum of its 5 owner-masked products
        wire [4:0]      rc4;         // per row: the carry of its tap 4 (not in the row's adders)
        for (kr = 0; kr < 5; kr = kr + 1) begin : mrow
            // sum of the 5 owner-masked products of window row kr (mask decoded at load time)
            wire [14:0] p0 = prod_flat[((gg*NT + kr*5 + 0)*4 + ss)*15 +: 15];
            wire [14:0] p1 = prod_flat[((gg*NT + kr*5 + 1)*4 + ss)*15 +: 15];
            wire [14:0] p2 = prod_flat[((gg*NT + kr*5 + 2)*4 + ss)*15 +: 15];
            wire [14:0] p3 = prod_flat[((gg*NT + kr*5 + 3)*4 + ss)*15 +: 15];
            wire [14:0] p4 = prod_flat[((gg*NT + kr*5 + 4)*4 + ss)*15 +: 15];
            // carries of the hi products (constant 0 in lo groups): the adders' carry-ins
            wire c0 = (gg % 2 == 1) && cy_flat[(gg*NT + kr*5 + 0)*4 + ss];
            wire c1 = (gg % 2 == 1) && cy_flat[(gg*NT + kr*5 + 1)*4 + ss];
            wire c2 = (gg % 2 == 1) && cy_flat[(gg*NT + kr*5 + 2)*4 + ss];
            wire c3 = (gg % 2 == 1) && cy_flat[(gg*NT + kr*5 + 3)*4 + ss];
            assign rc4[kr] = (gg % 2 == 1) && cy_flat[(gg*NT + kr*5 + 4)*4 + ss];
            // balanced tree, each stage one bit wider (two's complement, signs extended)
            wire [15:0] a01 = {p0[14], p0} + {p1[14], p1} + {15'd0, c0};
            wire [15:0] a23 = {p2[14], p2} + {p3[14], p3} + {15'd0, c1};
            wire [16:0] a03 = {a01[15], a01} + {a23[15], a23} + {16'd0, c2};
            assign rsum[kr*PW +: PW] = {a03[16], a03} + sx(p4) + {{(PW-1){1'b0}}, c3};
        end
        // stage 2 registers: the sums of rows 0, 1, 2 and of rows 3 + 4 (carry of tap 19 as carry-in;
        // tap 24's carry was added to its product), and the carries of taps 4, 9, 14
        wire [PW-1:0] r3 = rsum[3*PW +: PW];
        wire [PW-1:0] r4 = rsum[4*PW +: PW];
        always @(posedge clk) begin
            part_flat[(gg*4 + ss)*KPW +: 3*PW] <= rsum[3*PW-1:0];
            part_flat[(gg*4 + ss)*KPW + 3*PW +: PW+1] <= {r3[PW-1], r3} + {r4[PW-1], r4} + {{PW{1'b0}}, rc4[3]};
            cy2_flat[(gg*4 + ss)*3 +: 3] <= rc4[2:0];
        end
        // stage 3: three two-input adders, each input narrower than its sum (a 5-operand expression,
        // or a chain of equal-width sums, becomes a $macc that yosys maps with ~2x the LUTs);
        // the carries of taps 4, 9, 14 as carry-ins
        wire [PW-1:0] q0 = part_flat[(gg*4 + ss)*KPW + 0*PW +: PW];
        wire [PW-1:0] q1 = part_flat[(gg*4 + ss)*KPW + 1*PW +: PW];
        wire [PW-1:0] q2 = part_flat[(gg*4 + ss)*KPW + 2*PW +: PW];
        wire [PW:0]   q34 = part_flat[(gg*4 + ss)*KPW + 3*PW +: PW+1];
        wire [2:0]    c4 = cy2_flat[(gg*4 + ss)*3 +: 3];
        wire [PW:0] s01 = {q0[PW-1], q0} + {q1[PW-1], q1} + {{PW{1'b0}}, c4[0]};
        wire [PW:0] s234 = {q2[PW-1], q2} + q34 + {{PW{1'b0}}, c4[1]};      // 3 rows: < 2^18 in magnitude
        always @(posedge clk) begin
            sum_flat[(gg*4 + ss)*ACC_W +: ACC_W] <= {{(ACC_W-PW-1){s01[PW]}}, s01} + {{(ACC_W-PW-1){s234[PW]}}, s234}
                                                    + {{(ACC_W-1){1'b0}}, c4[2]};
        end
    end
end
endgenerate

always @(posedge clk) begin
    s1_v <= c_issue;  s1_oy <= oy_reg;  s1_ox <= ox_reg;  s1_tag <= ctag_reg;  s1_ph <= ph_reg;  s1_sl <= c_slot_reg;
    s2_v <= s1_v;     s2_oy <= s1_oy;   s2_ox <= s1_ox;   s2_tag <= s1_tag;    s2_ph <= s1_ph;  s2_sl <= s1_sl;
    s3_v <= s2_v;     s3_oy <= s2_oy;   s3_ox <= s2_ox;   s3_tag <= s2_tag;    s3_ph <= s2_ph;  s3_sl <= s2_sl;
    if (rst) begin
        s1_v <= 1'b0;
        s2_v <= 1'b0;
        s3_v <= 1'b0;
    end
end

// ================================================================ 2x2 max-pool into the pooled-row buffer
// One memory per phase (its OCA kernels), written only in its phase: no read-modify-write of the
// other kernels. The even column of a pair is held in a shift register of the last PHASES sums (the
// odd column's same phase comes PHASES valid cycles later): no muxes.
reg [3:0]  pb_py_reg [0:2];
reg [2:0]  pb_tag_reg = 3'b000;
wire [1:0] s3_slot = s3_sl;
wire [3:0] s3_px = s3_ox[4:1];
wire [5:0] s3_pa = s3_slot * 4'd14 + s3_px;
wire [ACC_W*OCA-1:0] hprev;
reg  [ACC_W*OCA-1:0] pb_old;
wire [ACC_W*OC-1:0]  pb_rd;            // every phase memory read at s3_pa
wire [ACC_W*OC-1:0]  rq_pb;            // requant read: all 64 pooled sums of (slot, px)
reg  [ACC_W*OCA-1:0] pool_new;
wire pb_write = s3_v && s3_ox[0];
wire [5:0] rq_pa;
reg  [ACC_W*OC-1:0]  hp_reg;           // the last PHASES sums (newest in the low part)
genvar pp;
generate
for (pp = 0; pp < PHASES; pp = pp + 1) begin : pbank
    localparam [PHW-1:0] PPV = pp;
    reg [ACC_W*OCA-1:0] pbm [0:41];    // slot*14 + px: pooled sums (without bias) of phase pp, 3 slots
    always @(posedge clk) begin
        if (pb_write && s3_ph == PPV) pbm[s3_pa] <= pool_new;
    end
    assign pb_rd[pp*ACC_W*OCA +: ACC_W*OCA] = pbm[s3_pa];
    assign rq_pb[pp*ACC_W*OCA +: ACC_W*OCA] = pbm[rq_pa];
end
if (PHASES == 1) begin : hp1
    always @(posedge clk) if (s3_v) hp_reg <= sum_flat;
end else begin : hpn
    always @(posedge clk) if (s3_v) hp_reg <= {hp_reg[ACC_W*OCA*(PHASES-1)-1:0], sum_flat};
end
endgenerate
assign hprev = hp_reg[ACC_W*OCA*(PHASES-1) +: ACC_W*OCA];
integer pc;
always @(*) begin
    pb_old = pb_rd[ACC_W*OCA-1:0];
    for (pc = 1; pc < PHASES; pc = pc + 1) if (s3_ph == pc[PHW-1:0]) pb_old = pb_rd[pc*ACC_W*OCA +: ACC_W*OCA];
end
integer c;
always @(*) begin
    for (c = 0; c < OCA; c = c + 1) begin
        pool_new[c*ACC_W +: ACC_W] = ($signed(hprev[c*ACC_W +: ACC_W]) > $signed(sum_flat[c*ACC_W +: ACC_W])) ?
                                     hprev[c*ACC_W +: ACC_W] : sum_flat[c*ACC_W +: ACC_W];
        if (s3_oy[0] && $signed(pb_old[c*ACC_W +: ACC_W]) > $signed(pool_new[c*ACC_W +: ACC_W])) begin
            pool_new[c*ACC_W +: ACC_W] = pb_old[c*ACC_W +: ACC_W];
        end
    end
end
wire pb_done = pb_write && s3_oy[0] && s3_ox == 5'd27 &&    // the row pair is pooled: hand it to requant
               s3_ph == PH_LAST;
always @(posedge clk) begin
    if (pb_done) begin
        pb_py_reg[s3_slot] <= s3_oy[4:1];
        pb_tag_reg[s3_slot] <= s3_tag;
    end
end

// ================================================================ requant lanes
reg        rq_act_reg = 1'b0;
reg [1:0]  rq_slot_reg = 0;            // pooled-row slot being read
reg        rq_vsi_reg = 1'b0;          // value slot of the word being requantised (issue side)
reg [3:0]  rq_px_reg = 0, rq_py_reg = 0;
reg [JW-1:0] rq_j_reg = 0;
reg        rq_tag_reg = 1'b0;
reg [1:0]  vs_full_reg = 2'b00;        // value slot holds a complete word
reg [1:0]  vs_tag_reg = 2'b00;
reg [7:0]  clr_reg = 0;                // histogram clear sweep after reset
wire       clr_busy = !clr_reg[7];
wire [3:0] rq_py_next = pb_py_reg[rq_slot_reg];
wire       rq_start = !rq_act_reg && !clr_busy && pbf_reg[rq_slot_reg] &&
                      (rq_py_next != 0 || !vs_full_reg[rq_vsi_reg]);
wire       rq_issue = rq_act_reg;
wire       rq_last_issue = rq_act_reg && rq_px_reg == 4'd13 && rq_j_reg == CPL - 1;
assign rq_pa = rq_slot_reg * 4'd14 + rq_px_reg;

// pipeline metadata: r1 (acc + bias registered), then sk_requant's 3 stages
reg        r1_v = 1'b0, r2_v = 1'b0, r3_v = 1'b0, r4_v = 1'b0;
reg [3:0]  r1_px = 0, r2_px = 0, r3_px = 0, r4_px = 0;
reg [AW-1:0] r1_a = 0, r2_a = 0, r3_a = 0, r4_a = 0;   // value word slot*CPL*14 + j*14 + py
reg        r1_s = 0, r2_s = 0, r3_s = 0, r4_s = 0;   // value slot
reg        r1_l = 0, r2_l = 0, r3_l = 0, r4_l = 0;   // last value of the word
reg        r1_t = 0, r2_t = 0, r3_t = 0, r4_t = 0;   // tag

always @(posedge clk) begin
    if (rq_start) begin
        rq_act_reg <= 1'b1;
        rq_px_reg <= 0;
        rq_j_reg <= 0;
        rq_py_reg <= rq_py_next;
        rq_tag_reg <= pb_tag_reg[rq_slot_reg];
    end
    if (rq_issue) begin
        rq_j_reg <= rq_j_reg + 1'b1;
        if (rq_j_reg == CPL - 1) begin
            rq_j_reg <= 0;
            rq_px_reg <= rq_px_reg + 1'b1;
        end
        if (rq_last_issue) begin
            rq_act_reg <= 1'b0;
            rq_slot_reg <= (rq_slot_reg == 2'd2) ? 2'd0 : rq_slot_reg + 1'b1;
            if (rq_py_reg == 4'd13) rq_vsi_reg <= !rq_vsi_reg;
        end
    end
    r1_v <= rq_issue;
    r1_px <= rq_px_reg;
    r1_a <= rq_vsi_reg * (CPL * 14) + rq_j_reg * 14 + rq_py_reg;
    r1_s <= rq_vsi_reg;
    r1_l <= rq_last_issue && rq_py_reg == 4'd13;
    r1_t <= rq_tag_reg;
    {r2_v, r2_px, r2_a, r2_s, r2_l, r2_t} <= {r1_v, r1_px, r1_a, r1_s, r1_l, r1_t};
    {r3_v, r3_px, r3_a, r3_s, r3_l, r3_t} <= {r2_v, r2_px, r2_a, r2_s, r2_l, r2_t};
    {r4_v, r4_px, r4_a, r4_s, r4_l, r4_t} <= {r3_v, r3_px, r3_a, r3_s, r3_l, r3_t};
    if (clr_busy) clr_reg <= clr_reg + 1'b1;
    if (rst) begin
        rq_act_reg <= 1'b0;
        rq_slot_reg <= 0;
        rq_vsi_reg <= 1'b0;
        r1_v <= 1'b0;
        r2_v <= 1'b0;
        r3_v <= 1'b0;
        r4_v <= 1'b0;
        clr_reg <= 0;
    end
end

// pooled-row slot flags: set by the pool stage, cleared after the requant read it
always @(posedge clk) begin
    if (pb_done) pbf_reg[s3_slot] <= 1'b1;
    if (rq_last_issue) pbf_reg[rq_slot_reg] <= 1'b0;
    if (rst) pbf_reg <= 3'b000;
end

// ================================================================ threshold and select control (declared before the lanes)
reg        th_act_reg = 1'b0;
reg        th_slot_reg = 1'b0;
reg [6:0]  th_t_reg = 0;
reg        th_found_reg = 1'b0;
reg [31:0] th_above_reg = 0;
reg [6:0]  th_thr_reg = 0;
reg [31:0] th_ties_reg = 0;
reg [1:0]  th_done_reg = 2'b00;
reg [6:0]  thr_s_reg [0:1];
reg [31:0] ties_s_reg [0:1];

reg        sl_slot_reg = 1'b0;
reg        sl_act_reg = 1'b0;          // issuing value-word reads
reg        sl_run_reg = 1'b0;          // word being selected (until its end beat)
reg [5:0]  sl_c_reg = 0;
reg [3:0]  sl_y_reg = 0;

wire [NL*7-1:0] y_lane;             // 16 lane requant outputs
wire [NL*14-1:0] hist_lane;            // lane counts (14 bits each) of bin th_t for slot th_slot
wire [NL*112-1:0] vq_lane;             // lane value-word read data
wire [AW-1:0] sl_ra = sl_slot_reg * (CPL * 14) + (sl_c_reg % CPL) * 14 + sl_y_reg;   // value word of (c, y) in lane c/CPL

genvar ll;
generate
for (ll = 0; ll < NL; ll = ll + 1) begin : lane
    // acc + bias for channel 4l + j of pooled position px
    // bias / mult / shift of the lane's channels (channel ll*CPL + j at j)
    reg [31:0] bias_m [0:CPL-1];
    reg [15:0] mult_m [0:CPL-1];
    reg [5:0]  shift_m [0:CPL-1];
    wire ld_lane = ld_here && ld_addr[5:JW] == ll;
    always @(posedge clk) begin
        if (ld_lane && ld_sel == 3'd1) bias_m[ld_addr[JW-1:0]] <= ld_data;
        if (ld_lane && ld_sel == 3'd2) mult_m[ld_addr[JW-1:0]] <= ld_data[15:0];
        if (ld_lane && ld_sel == 3'd3) shift_m[ld_addr[JW-1:0]] <= ld_data[5:0];
    end
    // the pooled sum of channel ll*CPL + j (a CPL:1 mux of constant part-selects)
    wire [ACC_W*CPL-1:0] lane_pb = rq_pb[ll*CPL*ACC_W +: CPL*ACC_W];
    reg  [ACC_W-1:0] pb_sel;
    integer jx;
    always @(*) begin
        pb_sel = lane_pb[ACC_W-1:0];
        for (jx = 1; jx < CPL; jx = jx + 1) if (rq_j_reg == jx[JW-1:0]) pb_sel = lane_pb[jx*ACC_W +: ACC_W];
    end
    reg signed [31:0] acc_reg = 0;
    reg [15:0] mu_reg = 0;
    reg [5:0]  sh_reg = 0;
    always @(posedge clk) begin
        acc_reg <= $signed(pb_sel) + $signed(bias_m[rq_j_reg]);
        mu_reg <= mult_m[rq_j_reg];
        sh_reg <= shift_m[rq_j_reg];
    end
    wire rq_ov;
    sk_requant #(.ACC_W(32)) rq_inst (
        .clk(clk), .in_valid(r1_v), .acc(acc_reg), .mult(mu_reg), .shift(sh_reg),
        .out_valid(rq_ov), .y(y_lane[ll*7 +: 7])
    );

    wire [6:0] yv = y_lane[ll*7 +: 7];
    // value memory: {slot, j*14 + py} -> 14 cells of 8 bits (cell px)
    reg [111:0] vmem [0:VD-1];
    integer vx;
    reg [111:0] vq_reg = 0;
    always @(posedge clk) begin
        for (vx = 0; vx < 14; vx = vx + 1) begin          // one cell (byte lane) per write
            if (r4_v && r4_px == vx) vmem[r4_a][vx*8 +: 8] <= {1'b0, yv};
        end
        vq_reg <= vmem[sl_ra];
    end
    assign vq_lane[ll*112 +: 112] = vq_reg;

    // histograms, one per value slot (cleared by the threshold scan, and after reset)
    reg [HW-1:0] h0 [0:127];
    reg [HW-1:0] h1 [0:127];
        always @(posedge clk) begin
        if (clr_busy) h0[clr_reg[6:0]] <= 0;
        else if (r4_v && !r4_s) h0[yv] <= h0[yv] + 1'b1;
        else if (th_act_reg && !th_slot_reg) h0[th_t_reg] <= 0;
        if (clr_busy) h1[clr_reg[6:0]] <= 0;
        else if (r4_v && r4_s) h1[yv] <= h1[yv] + 1'b1;
        else if (th_act_reg && th_slot_reg) h1[th_t_reg] <= 0;
    end
    wire [HW-1:0] hq = th_slot_reg ? h1[th_t_reg] : h0[th_t_reg];
    assign hist_lane[ll*14 +: 14] = hq;
end
endgenerate

// value slot full: set after the last value of a word, cleared by the select's end beat
reg        sl_end_push;
always @(posedge clk) begin
    if (r4_v && r4_l) begin
        vs_full_reg[r4_s] <= 1'b1;
        vs_tag_reg[r4_s] <= r4_t;
    end
    if (sl_end_push) vs_full_reg[sl_slot_reg] <= 1'b0;
    if (rst) vs_full_reg <= 2'b00;
end

// ================================================================ threshold scan
reg [13:0] th_tot;
integer li;
always @(*) begin
    th_tot = 0;
    for (li = 0; li < NL; li = li + 1) th_tot = th_tot + hist_lane[li*14 +: 14];
end
wire [31:0] th_ge = th_above_reg + th_tot;
wire th_hit = !th_found_reg && th_ge >= k_reg;
always @(posedge clk) begin
    if (!th_act_reg) begin
        if (!clr_busy && vs_full_reg[th_slot_reg] && !th_done_reg[th_slot_reg]) begin
            th_act_reg <= 1'b1;
            th_t_reg <= 7'd127;
            th_found_reg <= 1'b0;
            th_above_reg <= 0;
            th_thr_reg <= 0;
            th_ties_reg <= 0;
        end
    end else begin
        if (th_hit) begin
            th_found_reg <= 1'b1;
            th_thr_reg <= th_t_reg;
            th_ties_reg <= k_reg - th_above_reg;
        end
        th_above_reg <= th_ge;
        th_t_reg <= th_t_reg - 1'b1;
        if (th_t_reg == 0) begin
            th_act_reg <= 1'b0;
            th_done_reg[th_slot_reg] <= 1'b1;
            thr_s_reg[th_slot_reg] <= th_hit ? th_t_reg : th_thr_reg;
            ties_s_reg[th_slot_reg] <= th_hit ? k_reg - th_above_reg : th_ties_reg;
            th_slot_reg <= !th_slot_reg;
        end
    end
    if (sl_end_push) th_done_reg[sl_slot_reg] <= 1'b0;
    if (rst) begin
        th_act_reg <= 1'b0;
        th_slot_reg <= 1'b0;
        th_done_reg <= 2'b00;
    end
end

// ================================================================ select scan
reg        q1_v = 1'b0, q2_v = 1'b0;
reg [5:0]  q1_c = 0, q2_c = 0;
reg [3:0]  q1_y = 0, q2_y = 0;
reg [111:0] q2_w = 0;
reg [111:0] q1_w;                      // the value word of lane q1_c / CPL (NL:1 mux, constant part-selects)
integer qi;
always @(*) begin
    q1_w = vq_lane[111:0];
    for (qi = 1; qi < NL; qi = qi + 1) if (q1_c[5:JW] == qi[5-JW:0]) q1_w = vq_lane[qi*112 +: 112];
end
reg [6:0]  sl_thr_reg = 0;
reg [31:0] sl_ties_reg = 0;

// queue of value words with at least one winner
reg [13:0]  qm [0:QD-1];
reg [97:0]  qv [0:QD-1];
reg [13:0]  qb [0:QD-1];               // c*196 + y*14
reg [5:0]   qc [0:QD-1];
reg [3:0]   qy [0:QD-1];
reg [QAW:0] qw_reg = 0, qr_reg = 0;    // pointers (one extra bit)
wire [QAW:0] q_cnt = qw_reg - qr_reg;
wire        q_empty = (q_cnt == 0);
wire        sl_issue = sl_act_reg && (q_cnt + q1_v + q2_v < QD);

// winner mask of the word in stage 2
reg [13:0] win_m, eq_m;
reg [3:0]  ties_used;                  // <= 14
wire [3:0] ties_cap = (sl_ties_reg[31:4] != 0) ? 4'd15 : sl_ties_reg[3:0];   // min(budget, 15)
integer xi;
always @(*) begin
    ties_used = 0;
    for (xi = 0; xi < 14; xi = xi + 1) begin
        eq_m[xi] = q2_w[xi*8 +: 7] == sl_thr_reg && sl_thr_reg != 0;
        win_m[xi] = q2_w[xi*8 +: 7] > sl_thr_reg;
        if (eq_m[xi] && ties_used < ties_cap) begin
            win_m[xi] = 1'b1;
            ties_used = ties_used + 1;
        end
    end
end
wire q_push = q2_v && win_m != 0;
reg [97:0] q2_vals;
always @(*) begin
    for (xi = 0; xi < 14; xi = xi + 1) q2_vals[xi*7 +: 7] = q2_w[xi*8 +: 7];
end

// emitter: lowest set bit of the head word
reg  [13:0] hm_reg;                     // remaining winners of the head word once it has emitted one
reg         hm_v_reg;
wire [13:0] h_m = hm_v_reg ? hm_reg : qm[qr_reg[QAW-1:0]];
reg  [3:0]  h_x;
always @(*) begin
    h_x = 0;
    for (xi = 13; xi >= 0; xi = xi - 1) if (h_m[xi]) h_x = xi;
end
wire        em_go = !q_empty && !m_afull;
wire [13:0] h_m_next = h_m & ~(14'd1 << h_x);
wire [97:0] h_v = qv[qr_reg[QAW-1:0]];
wire [13:0] h_idx = qb[qr_reg[QAW-1:0]] + h_x;

reg [45:0] m_data_reg = 0;
reg        m_push_reg = 1'b0;
assign m_data = m_data_reg;
assign m_push = m_push_reg;

always @(*) begin
    sl_end_push = sl_run_reg && !sl_act_reg && !q1_v && !q2_v && q_empty && !m_afull;
end

always @(posedge clk) begin
    m_push_reg <= 1'b0;
    // start a word
    if (!sl_run_reg && th_done_reg[sl_slot_reg]) begin
        sl_run_reg <= 1'b1;
        sl_act_reg <= 1'b1;
        sl_c_reg <= 0;
        sl_y_reg <= 0;
        sl_thr_reg <= thr_s_reg[sl_slot_reg];
        sl_ties_reg <= ties_s_reg[sl_slot_reg];
    end
    // issue value-word reads in index order
    if (sl_issue) begin
        if (sl_y_reg == 4'd13) begin
            sl_y_reg <= 0;
            sl_c_reg <= sl_c_reg + 1'b1;
            if (sl_c_reg == 6'd63) sl_act_reg <= 1'b0;
        end else begin
            sl_y_reg <= sl_y_reg + 1'b1;
        end
    end
    q1_v <= sl_issue;
    q1_c <= sl_c_reg;
    q1_y <= sl_y_reg;
    q2_v <= q1_v;
    q2_c <= q1_c;
    q2_y <= q1_y;
    q2_w <= q1_w;
    // mark winners, spend the tie budget, queue
    if (q2_v) sl_ties_reg <= sl_ties_reg - {28'd0, ties_used};
    if (q_push) begin
        qm[qw_reg[QAW-1:0]] <= win_m;
        qv[qw_reg[QAW-1:0]] <= q2_vals;
        qb[qw_reg[QAW-1:0]] <= q2_c * 8'd196 + q2_y * 4'd14;
        qc[qw_reg[QAW-1:0]] <= q2_c;
        qy[qw_reg[QAW-1:0]] <= q2_y;
        qw_reg <= qw_reg + 1'b1;
    end
    // emit one winner per cycle
    if (em_go) begin
        m_push_reg <= 1'b1;
        m_data_reg <= {1'b0, 1'b0, 2'b00, h_idx, 5'd0, qc[qr_reg[QAW-1:0]], 1'b0, qy[qr_reg[QAW-1:0]], 1'b0, h_x,
                       h_v[h_x*7 +: 7]};
        hm_reg <= h_m_next;
        hm_v_reg <= h_m_next != 0;
        if (h_m_next == 0) qr_reg <= qr_reg + 1'b1;
    end
    // end beat
    if (sl_end_push) begin
        m_push_reg <= 1'b1;
        m_data_reg <= {1'b1, vs_tag_reg[sl_slot_reg], 44'd0};
        sl_run_reg <= 1'b0;
        sl_slot_reg <= !sl_slot_reg;
    end
    if (rst) begin
        m_push_reg <= 1'b0;
        sl_run_reg <= 1'b0;
        sl_act_reg <= 1'b0;
        sl_slot_reg <= 1'b0;
        q1_v <= 1'b0;
        q2_v <= 1'b0;
        qw_reg <= 0;
        qr_reg <= 0;
        hm_v_reg <= 1'b0;
    end
end

assign in_busy = in_full_reg != 2'b00 || wcnt_reg != 0;
assign busy = in_busy || pst_reg != P_IDLE || run_reg || s1_v || s2_v || s3_v || pbf_reg != 0 || rq_act_reg ||
              r1_v || r2_v || r3_v || r4_v || vs_full_reg != 0 || th_act_reg || sl_run_reg;
assign stall = m_afull && (!q_empty || (sl_run_reg && !sl_act_reg && !q1_v && !q2_v));

endmodule

`resetall
