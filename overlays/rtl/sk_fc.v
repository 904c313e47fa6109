// sk_fc: a complementary-sparse fully connected layer (fc1 / fc2): Select, Multiply, Route, Sum; requantise, k-WTA
`default_nettype none
`timescale 1ns / 1ps

// Input: a stream of non-zero activations ("winners") of one word, then an end
// beat. For each winner, all G packed kernels are read at fan-in position
// f = the winner's index (one weight memory per group), multiplied by the
// winner and routed by the stored owner id to that group's accumulator of
// kernel g*N_PACK+owner (the Route step). The winner value is shared by all
// groups, so groups 2p and 2p+1 share one multiplier (a DSP48E2, two products
// as in sk_conv2: P = v * (hi*2^18 + lo), the hi product's carry P[17] is the
// accumulator adder's carry-in): ceil(G/2) multipliers (fc1: 30), the last
// group alone when G is odd. The odd group's memory stores hi - (lo < 0) (9
// bits), computed on the load path; this needs the entries group-major (the
// weight image's and sk_loader's order).
// After the end beat (the "back end"): read out every kernel once (clearing
// it), add the bias, requantise, write the value memory and a 128-bin
// histogram; scan the histogram from the top for the k-WTA threshold T; scan
// the value memory in index order and emit the winners (v > T, then the first
// k - count(v > T) with v == T; nothing when v == 0) and an end beat.
// The final layer (FINAL = 1) instead emits one result: scores and argmax.
// (The conv layers have their own engines: sk_conv1.v, sk_conv2.v.)
//
// Parallel back end (LANES > 1): the readout reads slot
// s of LANES groups per cycle (kernels (t*LANES + j)*N_PACK + s, j = lane), each
// lane with its own bias/mult/shift memory (kernels of the groups = j mod
// LANES), requantiser and histogram (summed in the threshold scan). The value
// memory is LANES banks by idx mod LANES (N_PACK odd, LANES a power of two: the
// LANES values of one readout cycle fall into different banks); the select scan
// reads one word of LANES cells in idx order per cycle and emits its winners
// lowest index first, one per cycle, with the tie budget.
// The threshold scan stops at T (the select starts) and clears the remaining
// histogram bins in the background.
// PINGPONG = 1: two accumulator buffers per bank; the next word's scatter runs
// while the back end reads out, thresholds and selects the previous word.
//
// Winner beat (46 bits): {end, tag, idx[15:0], c[10:0], y[4:0], x[4:0], val[6:0]}
//   in: idx = fan-in position (c, y, x ignored); out: idx = c = kernel, y = x = 0;
//   tag = the word's TLAST flag (end beat).
// Result (FINAL): {tag, class[7:0], score[OUT_C-1], ..., score[0]} (int32 each)
// Load bus: ld_sel 0 entry (ld_group g, ld_addr f, ld_data = weight | owner << 8),
//   1 bias, 2 mult, 3 shift (ld_addr = kernel), 4 k.
//
// Memory coding (for BRAM / LUT-RAM inference): every memory has one write
// port and synchronous reads (registered, with enable) except the small
// histograms (asynchronous reads, LUT-RAM); no reset loops (the accumulators and
// histograms are cleared by a sweep after reset).
module sk_fc #(
    parameter LAYER_ID = 2,    // position of this layer in the weight image (0..3)
    parameter FAN_IN   = 1600, // fan-in F: the input length
    parameter OUT_C    = 1500, // kernels C_out (a multiple of N_PACK)
    parameter N_PACK   = 25,   // kernels packed into one dense kernel
    parameter FINAL    = 0,    // 1: last layer: scores out, no requantisation or k-WTA
    parameter ACC_W    = 26,   // bits of the product sums (>= bits of 16129*FAN_IN + sign)
    parameter LANES    = 1,    // back-end lanes (power of two; > 1 needs FINAL 0 and an odd N_PACK)
    parameter PINGPONG = 0     // 1: double accumulators, scatter overlaps the back end
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

    // winners in
    input  wire [45:0] s_data,
    input  wire        s_valid,
    output wire        s_ready,

    // winners out (push; the receiving FIFO raises m_afull early enough for 2 more)
    output wire [45:0] m_data,
    output wire        m_push,
    input  wire        m_afull,

    // result out (FINAL only; push)
    output wire [OUT_C*32+8:0] r_data,
    output wire        r_push,
    input  wire        r_afull,

    output wire        busy,
    output wire        stall       // a result / winner waits for room downstream
);

// ---------------------------------------------------------------- geometry
localparam G     = OUT_C / N_PACK;                    // packed kernels (groups)
localparam DEPTH = N_PACK;                            // accumulator entries per group (its kernels)
localparam N_OUT = OUT_C;                             // layer outputs
localparam OWN_W = (N_PACK > 1) ? $clog2(N_PACK) : 1;
localparam OST   = (N_PACK > 1) ? OWN_W : 0;               // owner bits stored per weight (none: one owner)
localparam FW    = (FAN_IN > 1) ? $clog2(FAN_IN) : 1;
localparam AW    = (DEPTH > 1) ? $clog2(DEPTH) : 1;
localparam OCW   = (OUT_C > 1) ? $clog2(OUT_C) : 1;
localparam VW    = (N_OUT > 1) ? $clog2(N_OUT) : 1;
localparam CNT_W = $clog2(N_OUT + 1);
localparam CLR_N = (DEPTH > 128) ? DEPTH : 128;
localparam L     = LANES;
localparam LSH   = (L > 1) ? $clog2(L) : 0;           // log2(LANES)
localparam NSTEP = (G + L - 1) / L;                   // readout steps (LANES groups each)
localparam SW    = (NSTEP > 1) ? $clog2(NSTEP) : 1;
localparam PDEPTH = NSTEP * N_PACK;                   // kernels per lane parameter memory
localparam PAW   = (PDEPTH > 1) ? $clog2(PDEPTH) : 1;
localparam VDEPTH = (N_OUT + L - 1) / L;              // words of LANES cells in the value memory
localparam VAW   = (VDEPTH > 1) ? $clog2(VDEPTH) : 1;
localparam NBUF  = PINGPONG ? 2 : 1;
localparam IDXW  = VW + 2;                            // lane index width (padded lanes exceed N_OUT)

initial begin
    if (OUT_C % N_PACK != 0) begin
        $error("sk_fc: N_PACK must divide OUT_C (%m)");
        $finish;
    end
    if (L < 1 || (1 << LSH) != L || (L > 1 && (FINAL != 0 || N_PACK % 2 == 0))) begin
        $error("sk_fc: LANES must be a power of two; LANES > 1 needs FINAL 0 and an odd N_PACK (%m)");
        $finish;
    end
end

// front end (scatter) and back end states
localparam [1:0] F_CLEAR = 2'd0, F_RUN = 2'd1, F_DRAIN = 2'd2, F_WAIT = 2'd3;
localparam [2:0] B_IDLE = 3'd0, B_READOUT = 3'd1, B_THRESH = 3'd2, B_SELECT = 3'd3, B_END = 3'd4,
                 B_RESULT = 3'd5;

reg [1:0] fs_reg = F_CLEAR;
reg [2:0] bs_reg = B_IDLE;
reg [$clog2(CLR_N+1)-1:0] clr_reg = 0;
reg       sc_tag_reg = 1'b0;          // TLAST flag of the word being scattered
reg       tag_reg = 1'b0;             // TLAST flag of the word in the back end
reg       sc_buf_reg = 1'b0;          // accumulator buffer of the scatter
reg       ro_buf_reg = 1'b0;          // accumulator buffer of the back end
reg [31:0] k_reg = 0;

wire ld_here = ld_we && ld_layer == LAYER_ID;
wire clearing = (fs_reg == F_CLEAR);

// ---------------------------------------------------------------- scatter: one winner per cycle
reg        it_active_reg = 1'b0;      // stage 0: a winner is taken
reg [15:0] it_idx_reg = 0;
reg [6:0]  it_val_reg = 0;

wire s_end = s_data[45];
assign s_ready = (fs_reg == F_RUN);
wire s_take = s_valid && s_ready;

// stage 0: issue the weight read at fan-in position f = the winner's index
wire        s0_valid = it_active_reg;
wire [FW-1:0] s0_f = it_idx_reg[FW-1:0];

always @(posedge clk) begin
    it_active_reg <= s_take && !s_end;
    if (s_take && !s_end) begin
        it_idx_reg <= s_data[43:28];
        it_val_reg <= s_data[6:0];
    end
    if (rst) begin
        it_active_reg <= 1'b0;
    end
end

// stage 1: weights of all groups available; stage 2: read data available, add and write back
reg        s1_valid_reg = 1'b0;
reg [6:0]  s1_val_reg = 0;
reg        s2_valid_reg = 1'b0;
reg        s2p_valid_reg = 1'b0;   // the stage-2 operation of the previous cycle (for forwarding)

always @(posedge clk) begin
    s1_valid_reg <= s0_valid;
    s1_val_reg   <= it_val_reg;
    s2_valid_reg <= s1_valid_reg;
    s2p_valid_reg <= s2_valid_reg;
    if (rst) begin
        s1_valid_reg <= 1'b0;
        s2_valid_reg <= 1'b0;
        s2p_valid_reg <= 1'b0;
    end
end

// ---------------------------------------------------------------- readout counters
// step t (LANES groups), slot s (kernel within the group)
reg        ro_active_reg = 1'b0;
reg [SW-1:0] ro_t_reg = 0;
reg [OWN_W-1:0] ro_s_reg = 0;
reg [IDXW-1:0] ro_idx_reg = 0;         // output index of lane 0
wire ro_slot_last = (ro_s_reg == N_PACK - 1);
wire ro_last = (ro_t_reg == NSTEP - 1) && ro_slot_last;
wire [AW-1:0] ro_addr = ro_s_reg;
wire [31:0] ro_paddr32 = ro_t_reg * N_PACK + ro_s_reg;   // kernel parameter address (all lanes)
wire [PAW-1:0] ro_paddr = ro_paddr32[PAW-1:0];

reg        r1_valid_reg = 1'b0;
reg [SW-1:0] r1_t_reg = 0;
reg [AW-1:0] r1_addr_reg = 0;
reg [IDXW-1:0] r1_idx_reg = 0;
reg        ro_buf_q_reg = 1'b0;

wire ro_phase = (bs_reg == B_READOUT);

// ---------------------------------------------------------------- weights and multipliers
// Entry writes go through one register stage: the odd group of a pair (2p+1, "hi") stores
// hi - (lo < 0) in 9 bits, lo being the weight of group 2p at the same fan-in position. The loader
// writes the entries group-major (the weight image's order), so group 2p's entry at f is written
// before group 2p+1's: a 1-bit memory keeps the sign of the last even-group weight per position.
reg        le_v_reg = 1'b0;
reg [7:0]  le_g_reg = 0;
reg [FW-1:0] le_f_reg = 0;
reg [7:0]  le_w_reg = 0;
reg [OWN_W-1:0] le_o_reg = 0;
reg        le_s_reg = 1'b0;           // sign of the even group's weight at le_f
// (block RAM: yosys 0.23 fails mapping a 1-bit single-port memory this deep to LUT RAM)
(* ram_style = "block" *) reg lsign_mem [0:FAN_IN-1];
wire       ld_entry = ld_here && ld_sel == 3'd0;
always @(posedge clk) begin
    le_v_reg <= ld_entry;
    le_g_reg <= ld_group;
    le_f_reg <= ld_addr[FW-1:0];
    le_w_reg <= ld_data[7:0];
    le_o_reg <= ld_data[8 +: OWN_W];
    if (ld_entry && !ld_group[0]) begin
        lsign_mem[ld_addr[FW-1:0]] <= ld_data[7];
    end
    le_s_reg <= lsign_mem[ld_addr[FW-1:0]];
    if (rst) begin
        le_v_reg <= 1'b0;
    end
end
wire [8:0] le_w9 = {le_w_reg[7], le_w_reg} - {8'd0, le_s_reg};

// Multiply: the winner value v is shared by all groups, so groups 2p (lo) and 2p+1 (hi) share one
// multiplier (a DSP48E2): P = v * (hi*2^18 + lo) (multiplicand bits [17:0] = lo sign-extended,
// [26:18] = the stored hi - (lo < 0)); v*lo = P[14:0] (15-bit signed), v*hi = P[32:18] + P[17],
// the carry P[17] entering the accumulator adder as its carry-in. With an odd G the last group
// has a multiplier of its own.
wire [G*AW-1:0] addr1_flat;           // stage 1: owner (accumulator address) per group
wire [G*16-1:0] prod1_flat;           // stage 1: product per group (hi: without its carry)
wire [G-1:0]    cy1_flat;             // stage 1: carry of the hi products (0 for the others)
wire [G*9-1:0]  wq_flat;              // stage 1: weight per group, 9 bits (hi: hi - (lo < 0))

genvar g, b, u, j;
generate
for (g = 0; g < G; g = g + 1) begin : wgrp
    if (g % 2 == 1) begin : whi                 // hi of a pair: hi - (lo < 0), 9 bits
        reg [9+OST-1:0] wmem [0:FAN_IN-1];
        reg [9+OST-1:0] wq_reg = 0;
        wire [9+OWN_W-1:0] wd = {le_o_reg, le_w9};
        always @(posedge clk) begin
            if (le_v_reg && le_g_reg == g) begin
                wmem[le_f_reg] <= wd[9+OST-1:0];
            end
            if (s0_valid) begin
                wq_reg <= wmem[s0_f];
            end
        end
        if (N_PACK > 1) begin : own
            assign addr1_flat[g*AW +: AW] = wq_reg[9 +: OWN_W];
        end else begin : noown
            assign addr1_flat[g*AW +: AW] = {AW{1'b0}};
        end
        assign wq_flat[g*9 +: 9] = wq_reg[8:0];
    end else begin : wlo
        reg [8+OST-1:0] wmem [0:FAN_IN-1];
        reg [8+OST-1:0] wq_reg = 0;
        wire [8+OWN_W-1:0] wd = {le_o_reg, le_w_reg};
        always @(posedge clk) begin
            if (le_v_reg && le_g_reg == g) begin
                wmem[le_f_reg] <= wd[8+OST-1:0];
            end
            if (s0_valid) begin
                wq_reg <= wmem[s0_f];
            end
        end
        if (N_PACK > 1) begin : own
            assign addr1_flat[g*AW +: AW] = wq_reg[8 +: OWN_W];
        end else begin : noown
            assign addr1_flat[g*AW +: AW] = {AW{1'b0}};
        end
        assign wq_flat[g*9 +: 9] = {wq_reg[7], wq_reg[7:0]};
    end
end
for (g = 0; g < (G + 1) / 2; g = g + 1) begin : mpair
    wire [7:0] w_lo = wq_flat[(2*g)*9 +: 8];
    if (2*g + 1 < G) begin : pair
        wire [8:0]  w_hi = wq_flat[(2*g+1)*9 +: 9];
        wire [26:0] ma = {w_hi, {10{w_lo[7]}}, w_lo};      // hi*2^18 + lo
        /* verilator lint_off UNUSEDSIGNAL */
        wire signed [34:0] pm = $signed(ma) * $signed({1'b0, s1_val_reg});   // |P| < 2^32
        /* verilator lint_on UNUSEDSIGNAL */
        assign prod1_flat[(2*g)*16 +: 16]   = {pm[14], pm[14:0]};
        assign prod1_flat[(2*g+1)*16 +: 16] = {pm[32], pm[32:18]};
        assign cy1_flat[2*g]   = 1'b0;
        assign cy1_flat[2*g+1] = pm[17];
    end else begin : single
        wire signed [15:0] ps = $signed({1'b0, s1_val_reg}) * $signed(w_lo);
        assign prod1_flat[(2*g)*16 +: 16] = ps;
        assign cy1_flat[2*g] = 1'b0;
    end
end
endgenerate

// ---------------------------------------------------------------- accumulators per group
wire [ACC_W*NSTEP*L-1:0] acc_ro_flat;   // accumulator read data of all groups (back-end buffer), padded

generate
for (g = 0; g < G; g = g + 1) begin : grp
    // stage 1: route by owner (the accumulator address is the owner: the kernel's slot in the group)
    wire [AW-1:0] addr1 = addr1_flat[g*AW +: AW];
    wire signed [15:0] prod1 = prod1_flat[g*16 +: 16];
    reg        cy2_reg = 1'b0;
    always @(posedge clk) begin
        cy2_reg <= cy1_flat[g];
    end

    reg [AW-1:0] addr2_reg = 0, addr2p_reg = 0;
    reg signed [15:0] prod2_reg = 0;
    reg signed [ACC_W-1:0] sum2p_reg = 0;
    wire [ACC_W*NBUF-1:0] buf_q;          // read data of each buffer
    wire signed [ACC_W-1:0] rd2 = (NBUF > 1 && sc_buf_reg) ? buf_q[ACC_W*NBUF-1 -: ACC_W] : buf_q[0 +: ACC_W];
    wire [ACC_W-1:0] ro_q = (NBUF > 1 && ro_buf_q_reg) ? buf_q[ACC_W*NBUF-1 -: ACC_W] : buf_q[0 +: ACC_W];
    // forward the previous write-back when it hit the same entry (read-modify-write hazard)
    wire fwd = s2p_valid_reg && addr2p_reg == addr2_reg;
    // (unsigned operands, sign extended by hand: with a 1-bit carry in a signed expression yosys
    // builds a 3-operand $macc instead of one adder with the carry as its carry-in)
    wire [ACC_W-1:0] acc2 = fwd ? sum2p_reg : rd2;
    wire signed [ACC_W-1:0] sum2 = acc2 + {{(ACC_W-16){prod2_reg[15]}}, prod2_reg}
                                   + {{(ACC_W-1){1'b0}}, cy2_reg};     // hi: the carry-in

    always @(posedge clk) begin
        addr2_reg <= addr1;
        prod2_reg <= prod1;
        addr2p_reg <= addr2_reg;
        sum2p_reg <= sum2;
    end

    for (u = 0; u < NBUF; u = u + 1) begin : bf
        // this buffer is the back end's while it reads out (always the case for NBUF = 1 in B_READOUT)
        wire is_ro = ro_phase && (NBUF == 1 || ro_buf_reg == u);
        wire is_sc = (NBUF == 1 || sc_buf_reg == u);
        wire is_r1 = (NBUF == 1 || ro_buf_q_reg == u);
        reg [ACC_W-1:0] accm [0:DEPTH-1];
        reg [ACC_W-1:0] q_reg = 0;
        // one write port: clear sweep, scatter write-back, or clear-after-readout
        wire we_clr = clearing && clr_reg < DEPTH;
        wire we_sc  = s2_valid_reg && is_sc;
        wire we_ro  = r1_valid_reg && r1_t_reg == g / L && is_r1;
        wire [AW-1:0] ra = is_ro ? ro_addr : addr1;
        always @(posedge clk) begin
            if (we_clr) begin
                accm[clr_reg[AW-1:0]] <= {ACC_W{1'b0}};
            end else if (we_sc) begin
                accm[addr2_reg] <= sum2;
            end else if (we_ro) begin
                accm[r1_addr_reg] <= {ACC_W{1'b0}};
            end
            q_reg <= accm[ra];
        end
        assign buf_q[u*ACC_W +: ACC_W] = q_reg;
    end
    assign acc_ro_flat[g*ACC_W +: ACC_W] = ro_q;
end
if (NSTEP * L > G) begin : pad
    assign acc_ro_flat[ACC_W*NSTEP*L-1 : G*ACC_W] = 0;
end
endgenerate

// ---------------------------------------------------------------- kernel parameters (per lane)
// lane j holds the kernels of groups g = j mod LANES at (g / LANES) * N_PACK + (o mod N_PACK)
reg        pld_we_reg = 1'b0;
reg [2:0]  pld_sel_reg = 0;
reg [15:0] pld_lane_reg = 0;
reg [PAW-1:0] pld_addr_reg = 0;
reg [31:0] pld_data_reg = 0;
wire [OCW-1:0] ld_o = ld_addr[OCW-1:0];
wire [OCW-1:0] ld_g = (L > 1) ? ld_o / N_PACK : 0;        // constant divider, load path only
wire [OCW-1:0] ld_s = (L > 1) ? ld_o - ld_g * N_PACK : 0;
wire [31:0] ld_pa32 = (L > 1) ? (ld_g >> LSH) * N_PACK + ld_s : ld_o;
always @(posedge clk) begin
    pld_we_reg   <= ld_here && (ld_sel == 3'd1 || ld_sel == 3'd2 || ld_sel == 3'd3);
    pld_sel_reg  <= ld_sel;
    pld_lane_reg <= (L > 1) ? (ld_g & (L - 1)) : 16'd0;
    pld_addr_reg <= ld_pa32[PAW-1:0];
    pld_data_reg <= ld_data;
    if (ld_here && ld_sel == 3'd4) k_reg <= ld_data;
end

// ---------------------------------------------------------------- readout, requantisation, histograms (per lane)
reg [7:0]  th_t_reg = 0;                  // bin being scanned / cleared (counts down)
reg        th_active_reg = 1'b0;
reg        th_found_reg = 1'b0;
reg [31:0] th_above_reg = 0;              // count(v > t)
reg [6:0]  thr_reg = 0;                   // threshold T
reg [31:0] ties_reg = 0;                  // ties still to take
wire [CNT_W*L-1:0] th_cnt_flat;
wire [L-1:0] lane_rq_valid;
wire [7*L-1:0] lane_rq_y;
wire [IDXW*L-1:0] lane_rq_idx;
wire signed [31:0] r2_acc0;               // lane 0 (FINAL)
wire r2_valid0;
reg  [OCW-1:0] r2_o_reg = 0;              // lane-0 kernel at r2 (FINAL)

generate
for (j = 0; j < L; j = j + 1) begin : lane
    reg [31:0] bias_mem [0:PDEPTH-1];
    reg [15:0] mult_mem [0:PDEPTH-1];
    reg [5:0]  shift_mem [0:PDEPTH-1];
    reg [31:0] bias_q_reg = 0;
    reg [15:0] mult_q_reg = 0;
    reg [5:0]  shift_q_reg = 0;
    wire pwe = pld_we_reg && pld_lane_reg == j;
    always @(posedge clk) begin
        if (pwe && pld_sel_reg == 3'd1) bias_mem[pld_addr_reg] <= pld_data_reg;
        if (pwe && pld_sel_reg == 3'd2) mult_mem[pld_addr_reg] <= pld_data_reg[15:0];
        if (pwe && pld_sel_reg == 3'd3) shift_mem[pld_addr_reg] <= pld_data_reg[5:0];
        if (ro_active_reg) begin
            bias_q_reg  <= bias_mem[ro_paddr];
            mult_q_reg  <= mult_mem[ro_paddr];
            shift_q_reg <= shift_mem[ro_paddr];
        end
    end

    // r1: accumulator of group t*LANES + j
    // NSTEP:1 multiplexer by constant part-selects (no shifter over the whole vector)
    wire [31:0] gsel = r1_t_reg * L + j;
    wire lane_ok = (gsel < G);
    reg signed [ACC_W-1:0] r1_acc;
    integer ti;
    always @* begin
        r1_acc = acc_ro_flat[j*ACC_W +: ACC_W];
        for (ti = 1; ti < NSTEP; ti = ti + 1) begin
            if (r1_t_reg == ti) begin
                r1_acc = acc_ro_flat[(ti*L + j)*ACC_W +: ACC_W];
            end
        end
    end

    reg        r2_valid_reg = 1'b0;
    reg signed [31:0] r2_acc_reg = 0;
    reg [15:0] r2_mult_reg = 0;
    reg [5:0]  r2_shift_reg = 0;
    reg [IDXW-1:0] r2_idx_reg = 0, r3_idx_reg = 0, r4_idx_reg = 0, r5_idx_reg = 0;
    always @(posedge clk) begin
        r2_valid_reg <= r1_valid_reg && lane_ok;
        r2_acc_reg   <= {{(32-ACC_W){r1_acc[ACC_W-1]}}, r1_acc} + $signed(bias_q_reg);
        r2_mult_reg  <= mult_q_reg;
        r2_shift_reg <= shift_q_reg;
        r2_idx_reg   <= r1_idx_reg + j * N_PACK;
        r3_idx_reg   <= r2_idx_reg;
        r4_idx_reg   <= r3_idx_reg;
        r5_idx_reg   <= r4_idx_reg;
        if (rst) begin
            r2_valid_reg <= 1'b0;
        end
    end

    wire       rq_valid;
    wire [6:0] rq_y;
    sk_requant #(.ACC_W(32)) requant_inst (
        .clk(clk), .in_valid(r2_valid_reg && !FINAL), .acc(r2_acc_reg), .mult(r2_mult_reg),
        .shift(r2_shift_reg), .out_valid(rq_valid), .y(rq_y)
    );
    wire rq_take = rq_valid && !rst;
    assign lane_rq_valid[j] = rq_take;
    assign lane_rq_y[7*j +: 7] = rq_y;
    assign lane_rq_idx[IDXW*j +: IDXW] = r5_idx_reg;

    // histogram of this lane (LUT-RAM: asynchronous reads)
    reg [CNT_W-1:0] hist [0:127];
    always @(posedge clk) begin
        if (clearing) begin
            if (clr_reg < 128) hist[clr_reg[6:0]] <= 0;
        end else if (th_active_reg) begin
            hist[th_t_reg[6:0]] <= 0;
        end else if (rq_take) begin
            hist[rq_y] <= hist[rq_y] + 1'b1;
        end
    end
    assign th_cnt_flat[CNT_W*j +: CNT_W] = hist[th_t_reg[6:0]];

    if (j == 0) begin : l0
        assign r2_acc0 = r2_acc_reg;
        assign r2_valid0 = r2_valid_reg;
    end
end
endgenerate

// threshold scan: sum of the lane histograms at bin th_t
reg [31:0] th_cnt;
integer jj;
always @* begin
    th_cnt = 0;
    for (jj = 0; jj < L; jj = jj + 1) begin
        th_cnt = th_cnt + th_cnt_flat[CNT_W*jj +: CNT_W];
    end
end
wire [31:0] th_ge = th_above_reg + th_cnt;

// ---------------------------------------------------------------- value memory: LANES banks by idx mod LANES
reg        sel_more_reg = 1'b0;           // words left to fetch
reg [VAW-1:0] sel_a_reg = 0;              // next word to fetch
wire       sel_fetch;
wire [7*L-1:0] vq_flat;

generate
for (b = 0; b < L; b = b + 1) begin : vbank
    reg [6:0] vmem [0:VDEPTH-1];
    reg [6:0] vq_reg = 0;
    reg           v_we;
    reg [VAW-1:0] v_wa;
    reg [6:0]     v_wd;
    integer i;
    always @* begin
        v_we = 1'b0;
        v_wa = 0;
        v_wd = 0;
        for (i = 0; i < L; i = i + 1) begin
            if (lane_rq_valid[i] && (lane_rq_idx[IDXW*i +: IDXW] & (L - 1)) == b) begin
                v_we = 1'b1;
                v_wa = lane_rq_idx[IDXW*i +: IDXW] >> LSH;
                v_wd = lane_rq_y[7*i +: 7];
            end
        end
    end
    always @(posedge clk) begin
        if (v_we && !FINAL) begin
            vmem[v_wa] <= v_wd;
        end
        if (sel_fetch) begin
            vq_reg <= vmem[sel_a_reg];
        end
    end
    assign vq_flat[7*b +: 7] = vq_reg;
end
endgenerate

// ---------------------------------------------------------------- select scan (one word of LANES cells per cycle)
reg        wv_reg = 1'b0;                 // a fetched word is in vq
reg [VAW-1:0] wa_reg = 0;                 // its address
reg [L-1:0] wd_reg = 0;                   // its cells already emitted

reg [L-1:0] cand;
reg [L-1:0] pick;
reg [15:0]  pick_b;
reg [6:0]   pick_v;
integer ci;
always @* begin
    cand = 0;
    pick = 0;
    pick_b = 0;
    pick_v = 0;
    for (ci = 0; ci < L; ci = ci + 1) begin
        if (wv_reg && !wd_reg[ci] && (wa_reg * L + ci) < N_OUT && vq_flat[7*ci +: 7] != 0 &&
            (vq_flat[7*ci +: 7] > thr_reg || (vq_flat[7*ci +: 7] == thr_reg && ties_reg != 0))) begin
            cand[ci] = 1'b1;
        end
    end
    for (ci = L - 1; ci >= 0; ci = ci - 1) begin
        if (cand[ci]) begin
            pick = 0;
            pick[ci] = 1'b1;
            pick_b = ci;
            pick_v = vq_flat[7*ci +: 7];
        end
    end
end
wire sel_emit = (bs_reg == B_SELECT) && cand != 0 && !m_afull;
wire win_done = wv_reg && (m_afull ? (cand == 0) : ((cand & ~pick) == 0));
assign sel_fetch = (bs_reg == B_SELECT) && sel_more_reg && (!wv_reg || win_done);
wire [31:0] emit_idx32 = wa_reg * L + pick_b;

reg [45:0] m_data_reg = 0;
reg        m_push_reg = 1'b0;
assign m_data = m_data_reg;
assign m_push = m_push_reg;

// ---------------------------------------------------------------- final layer: scores and argmax
// (only FINAL = 1 has the score registers: a 1500 x 32-bit vector in fc1 slowed yosys down)
reg        r_push_reg = 1'b0;
wire [OUT_C*32-1:0] scores_w;
wire [7:0] class_w;
generate
if (FINAL) begin : fin
    reg [OUT_C*32-1:0] scores_reg = 0;
    reg signed [31:0] best_reg = 0;
    reg [7:0]  class_reg = 0;
    integer oi;
    // collect scores in kernel order; argmax with ties to the lowest index
    always @(posedge clk) begin
        if (r2_valid0) begin
            for (oi = 0; oi < OUT_C; oi = oi + 1) begin
                if (r2_o_reg == oi) scores_reg[oi*32 +: 32] <= r2_acc0;
            end
            if (r2_o_reg == 0 || r2_acc0 > best_reg) begin
                best_reg <= r2_acc0;
                class_reg <= r2_o_reg;
            end
        end
    end
    assign scores_w = scores_reg;
    assign class_w = class_reg;
end else begin : nofin
    assign scores_w = 0;
    assign class_w = 0;
end
endgenerate
assign r_data = {tag_reg, class_w, scores_w};
assign r_push = r_push_reg;

// ---------------------------------------------------------------- control
reg [3:0] drain_reg = 0;
wire sc_empty = !it_active_reg && !s1_valid_reg && !s2_valid_reg;

always @(posedge clk) begin
    m_push_reg <= 1'b0;
    r_push_reg <= 1'b0;

    // front end
    case (fs_reg)
        F_CLEAR: begin
            clr_reg <= clr_reg + 1'b1;
            if (clr_reg == CLR_N - 1) begin
                fs_reg <= F_RUN;
            end
        end
        F_RUN: begin
            if (s_take && s_end) begin
                sc_tag_reg <= s_data[44];
                fs_reg <= F_DRAIN;
            end
        end
        F_DRAIN: begin
            // the last scatter operation has left stage 2, the back end and the histogram clear are free
            if (sc_empty && bs_reg == B_IDLE && !th_active_reg) begin
                bs_reg <= B_READOUT;
                tag_reg <= sc_tag_reg;
                ro_buf_reg <= sc_buf_reg;
                if (NBUF > 1) begin
                    sc_buf_reg <= !sc_buf_reg;
                    fs_reg <= F_RUN;
                end else begin
                    fs_reg <= F_WAIT;
                end
                ro_active_reg <= 1'b1;
                ro_t_reg <= 0;
                ro_s_reg <= 0;
                ro_idx_reg <= 0;
                drain_reg <= 0;
            end
        end
        F_WAIT: begin
            if (bs_reg == B_IDLE) begin
                fs_reg <= F_RUN;
            end
        end
        default: fs_reg <= F_RUN;
    endcase

    // threshold scan and background histogram clear
    if (th_active_reg) begin
        // T = largest t with count(v >= t) >= k; ties = k - count(v > T)
        if (!th_found_reg && th_ge >= k_reg) begin
            th_found_reg <= 1'b1;
            thr_reg <= th_t_reg[6:0];
            ties_reg <= k_reg - th_above_reg;
        end
        th_above_reg <= th_ge;
        th_t_reg <= th_t_reg - 1'b1;
        if (th_t_reg == 0) begin
            th_active_reg <= 1'b0;
        end
    end

    // back end
    case (bs_reg)
        B_IDLE: ;
        B_READOUT: begin
            if (ro_active_reg) begin
                if (ro_slot_last) begin
                    ro_idx_reg <= ro_idx_reg + 1 + (L - 1) * N_PACK;
                    ro_s_reg <= 0;
                    ro_t_reg <= ro_t_reg + 1'b1;
                end else begin
                    ro_idx_reg <= ro_idx_reg + 1'b1;
                    ro_s_reg <= ro_s_reg + 1'b1;
                end
                if (ro_last) begin
                    ro_active_reg <= 1'b0;
                end
            end else begin
                // let the requantiser pipeline drain (r1, r2, 3 requant stages)
                drain_reg <= drain_reg + 1'b1;
                if (drain_reg == 4'd6) begin
                    if (FINAL) begin
                        bs_reg <= B_RESULT;
                    end else begin
                        bs_reg <= B_THRESH;
                        th_active_reg <= 1'b1;
                        th_t_reg <= 8'd127;
                        th_found_reg <= 1'b0;
                        th_above_reg <= 0;
                        thr_reg <= 0;
                        ties_reg <= 0;
                    end
                end
            end
        end
        B_THRESH: begin
            // the select starts at T (or after bin 0 when fewer than k values exist)
            if ((!th_found_reg && th_ge >= k_reg) || th_t_reg == 0 || !th_active_reg) begin
                bs_reg <= B_SELECT;
                sel_more_reg <= 1'b1;
                sel_a_reg <= 0;
                wv_reg <= 1'b0;
            end
        end
        B_SELECT: begin
            if (sel_fetch) begin
                wv_reg <= 1'b1;
                wa_reg <= sel_a_reg;
                wd_reg <= 0;
                if (sel_a_reg == VDEPTH - 1) begin
                    sel_more_reg <= 1'b0;
                end
                sel_a_reg <= sel_a_reg + 1'b1;
            end else if (win_done) begin
                wv_reg <= 1'b0;
            end else begin
                wd_reg <= wd_reg | (sel_emit ? pick : {L{1'b0}});
            end
            if (sel_emit) begin
                m_push_reg <= 1'b1;
                m_data_reg <= {1'b0, 1'b0, emit_idx32[15:0], emit_idx32[10:0], 5'd0, 5'd0, pick_v};
                if (pick_v == thr_reg) begin
                    ties_reg <= ties_reg - 1'b1;
                end
            end
            if (!sel_more_reg && (!wv_reg || win_done)) begin
                bs_reg <= B_END;
            end
        end
        B_END: begin
            if (!m_afull) begin
                m_push_reg <= 1'b1;
                m_data_reg <= {1'b1, tag_reg, 44'd0};
                bs_reg <= B_IDLE;
            end
        end
        B_RESULT: begin
            if (!r_afull) begin
                r_push_reg <= 1'b1;
                bs_reg <= B_IDLE;
            end
        end
        default: bs_reg <= B_IDLE;
    endcase

    if (rst) begin
        fs_reg <= F_CLEAR;
        bs_reg <= B_IDLE;
        clr_reg <= 0;
        sc_buf_reg <= 1'b0;
        ro_buf_reg <= 1'b0;
        ro_active_reg <= 1'b0;
        th_active_reg <= 1'b0;
        sel_more_reg <= 1'b0;
        wv_reg <= 1'b0;
        m_push_reg <= 1'b0;
        r_push_reg <= 1'b0;
    end
end

// readout pipeline registers (lane-independent part)
reg [OCW-1:0] r1_o_reg = 0;
always @(posedge clk) begin
    r1_valid_reg <= ro_active_reg;
    r1_t_reg     <= ro_t_reg;
    r1_addr_reg  <= ro_addr;
    r1_idx_reg   <= ro_idx_reg;
    ro_buf_q_reg <= ro_buf_reg;
    r1_o_reg     <= ro_paddr;              // LANES = 1: the kernel
    r2_o_reg     <= r1_o_reg;
    if (rst) begin
        r1_valid_reg <= 1'b0;
    end
end

assign busy = (fs_reg != F_RUN) || (bs_reg != B_IDLE) || th_active_reg || !sc_empty;
assign stall = (bs_reg == B_RESULT && r_afull) || ((bs_reg == B_SELECT || bs_reg == B_END) && m_afull);

endmodule

`resetall
