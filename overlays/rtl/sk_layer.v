// sk_layer: one complementary-sparse layer: Select, Multiply, Route, Sum; pool, requantise, k-WTA
`default_nettype none
`timescale 1ns / 1ps

// Input: a stream of non-zero activations ("winners") of one word, then an end
// beat. For each winner and each valid tap, all G packed kernels are read at
// fan-in position f (one weight memory per group), multiplied by the winner
// (one multiplier per group) and routed by the stored owner id to that group's
// accumulator of kernel g*N_PACK+owner (the Route step). Accumulators live in
// POOL*POOL banks per group (by output row/column parity) so that the 2x2
// max-pool reads all four in one cycle.
// After the end beat: read out every (kernel, pooled position) once (clearing
// it), add the bias, requantise, write the value memory and a 128-bin
// histogram; scan the histogram from the top for the k-WTA threshold T; scan
// the value memory in index order and emit the winners (v > T, then the first
// k - count(v > T) with v == T; nothing when v == 0) and an end beat.
// The final layer (FINAL = 1) instead emits one result: scores and argmax.
//
// Winner beat (46 bits): {end, tag, idx[15:0], c[10:0], y[4:0], x[4:0], val[6:0]}
//   idx = flattened index c*H*W + y*W + x; tag = the word's TLAST flag (end beat).
// Result (FINAL): {tag, class[7:0], score[OUT_C-1], ..., score[0]} (int32 each)
// Load bus: ld_sel 0 entry (ld_group g, ld_addr f, ld_data = weight | owner << 8),
//   1 bias, 2 mult, 3 shift (ld_addr = kernel), 4 k.
module sk_layer #(
    parameter LAYER_ID = 0,    // position of this layer in the weight image (0..3)
    parameter KIND     = 0,    // 0: conv (KS x KS valid cross-correlation), 1: fully connected
    parameter IN_C     = 1,    // conv input channels
    parameter IN_H     = 32,   // conv input height
    parameter IN_W     = 32,   // conv input width
    parameter FAN_IN   = 25,   // fan-in F: IN_C*KS*KS (conv) or input length (fc)
    parameter OUT_C    = 64,   // kernels C_out (a multiple of N_PACK)
    parameter KS       = 5,    // conv kernel size (1 for fc)
    parameter N_PACK   = 8,    // kernels packed into one dense kernel
    parameter POOL     = 2,    // 2: 2x2 max-pool stride 2 (conv, even output size), 1: none
    parameter FINAL    = 0,    // 1: last layer: scores out, no requantisation or k-WTA
    parameter ACC_W    = 26    // bits of the product sums (>= bits of 16129*FAN_IN + sign)
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
localparam OH    = (KIND == 0) ? IN_H - KS + 1 : 1;   // conv output height
localparam OW    = (KIND == 0) ? IN_W - KS + 1 : 1;
localparam PH    = OH / POOL;                         // after pooling
localparam PW    = OW / POOL;
localparam NPOS  = PH * PW;                           // pooled positions per kernel
localparam G     = OUT_C / N_PACK;                    // packed kernels (groups)
localparam NB    = POOL * POOL;                       // accumulator banks per group
localparam DEPTH = N_PACK * NPOS;                     // entries per bank
localparam N_OUT = OUT_C * NPOS;                      // layer outputs after pooling
localparam OWN_W = (N_PACK > 1) ? $clog2(N_PACK) : 1;
localparam FW    = (FAN_IN > 1) ? $clog2(FAN_IN) : 1;
localparam AW    = (DEPTH > 1) ? $clog2(DEPTH) : 1;
localparam OCW   = (OUT_C > 1) ? $clog2(OUT_C) : 1;
localparam VW    = (N_OUT > 1) ? $clog2(N_OUT) : 1;
localparam CNT_W = $clog2(N_OUT + 1);
localparam CLR_N = (DEPTH > 128) ? DEPTH : 128;
localparam EW    = 8 + OWN_W;                         // stored entry: owner, weight

initial begin
    if (OUT_C % N_PACK != 0) begin
        $error("sk_layer: N_PACK must divide OUT_C (%m)");
        $finish;
    end
    if (POOL == 2 && (KIND != 0 || OH % 2 != 0 || OW % 2 != 0)) begin
        $error("sk_layer: POOL = 2 needs a conv layer with an even output size (%m)");
        $finish;
    end
end

localparam [2:0] ST_CLEAR = 3'd0, ST_RUN = 3'd1, ST_DRAIN = 3'd2, ST_READOUT = 3'd3,
                 ST_THRESH = 3'd4, ST_SELECT = 3'd5, ST_END = 3'd6, ST_RESULT = 3'd7;

reg [2:0] state_reg = ST_CLEAR;
reg [$clog2(CLR_N+1)-1:0] clr_reg = 0;
reg       tag_reg = 1'b0;
reg [31:0] k_reg = 0;

wire ld_here = ld_we && ld_layer == LAYER_ID;

// ---------------------------------------------------------------- scatter: tap iteration
reg        it_active_reg = 1'b0;
reg [2:0]  it_ky_reg = 0, it_kx_reg = 0, it_ky_hi_reg = 0, it_kx_lo_reg = 0, it_kx_hi_reg = 0;
reg [10:0] it_c_reg = 0;
reg [4:0]  it_y_reg = 0, it_x_reg = 0;
reg [15:0] it_idx_reg = 0;
reg [6:0]  it_val_reg = 0;

wire s_end = s_data[45];
wire last_tap = (KIND != 0) || (it_ky_reg == it_ky_hi_reg && it_kx_reg == it_kx_hi_reg);
assign s_ready = (state_reg == ST_RUN) && (!it_active_reg || last_tap);
wire s_take = s_valid && s_ready;

// stage 0: issue the weight read at fan-in position f
wire        s0_valid = (state_reg == ST_RUN) && it_active_reg;
wire [31:0] s0_f32 = (KIND == 0) ? it_c_reg * (KS * KS) + it_ky_reg * KS + it_kx_reg : it_idx_reg;
wire [FW-1:0] s0_f = s0_f32[FW-1:0];
wire [4:0]  s0_oy = (KIND == 0) ? it_y_reg - it_ky_reg : 5'd0;   // fc: one output position
wire [4:0]  s0_ox = (KIND == 0) ? it_x_reg - it_kx_reg : 5'd0;

// input tap range: output (y-ky, x-kx) must lie inside OH x OW
wire [4:0] in_y = s_data[16:12], in_x = s_data[11:7];
wire [2:0] ky_lo = (KIND == 0 && in_y > OH - 1) ? in_y - (OH - 1) : 3'd0;
wire [2:0] ky_hi = (KIND == 0 && in_y < KS - 1) ? in_y[2:0] : KS - 1;
wire [2:0] kx_lo = (KIND == 0 && in_x > OW - 1) ? in_x - (OW - 1) : 3'd0;
wire [2:0] kx_hi = (KIND == 0 && in_x < KS - 1) ? in_x[2:0] : KS - 1;

always @(posedge clk) begin
    if (s_take && !s_end) begin
        it_active_reg <= 1'b1;
        it_c_reg   <= s_data[27:17];
        it_y_reg   <= in_y;
        it_x_reg   <= in_x;
        it_idx_reg <= s_data[43:28];
        it_val_reg <= s_data[6:0];
        it_ky_reg  <= ky_lo;
        it_kx_reg  <= kx_lo;
        it_kx_lo_reg <= kx_lo;
        it_ky_hi_reg <= ky_hi;
        it_kx_hi_reg <= kx_hi;
    end else if (s0_valid) begin
        if (last_tap) begin
            it_active_reg <= 1'b0;
        end else if (it_kx_reg == it_kx_hi_reg) begin
            it_kx_reg <= it_kx_lo_reg;
            it_ky_reg <= it_ky_reg + 3'd1;
        end else begin
            it_kx_reg <= it_kx_reg + 3'd1;
        end
    end
    if (rst) begin
        it_active_reg <= 1'b0;
    end
end

// stage 1: weights of all groups available; compute the bank address
reg        s1_valid_reg = 1'b0;
reg [4:0]  s1_oy_reg = 0, s1_ox_reg = 0;
reg [6:0]  s1_val_reg = 0;
wire [31:0] s1_pos32 = (s1_oy_reg / POOL) * PW + (s1_ox_reg / POOL);
wire [1:0]  s1_bank = (POOL == 2) ? {s1_oy_reg[0], s1_ox_reg[0]} : 2'd0;

// stage 2: read data available; add and write back
reg        s2_valid_reg = 1'b0;
reg [1:0]  s2_bank_reg = 0;
reg        s2p_valid_reg = 1'b0;   // the stage-2 operation of the previous cycle (for forwarding)
reg [1:0]  s2p_bank_reg = 0;

always @(posedge clk) begin
    s1_valid_reg <= s0_valid;
    s1_oy_reg    <= s0_oy;
    s1_ox_reg    <= s0_ox;
    s1_val_reg   <= it_val_reg;
    s2_valid_reg <= s1_valid_reg;
    s2_bank_reg  <= s1_bank;
    s2p_valid_reg <= s2_valid_reg;
    s2p_bank_reg  <= s2_bank_reg;
    if (rst) begin
        s1_valid_reg <= 1'b0;
        s2_valid_reg <= 1'b0;
        s2p_valid_reg <= 1'b0;
    end
end

// ---------------------------------------------------------------- readout counters
reg        ro_active_reg = 1'b0;
reg [OCW-1:0] ro_o_reg = 0;           // kernel
reg [7:0]  ro_g_reg = 0;              // its group
reg [OWN_W-1:0] ro_s_reg = 0;         // its owner slot
reg [15:0] ro_p_reg = 0;              // pooled position
reg [VW-1:0] ro_idx_reg = 0;          // flat output index
wire ro_last = (ro_o_reg == OUT_C - 1) && (ro_p_reg == NPOS - 1);
wire [31:0] ro_addr32 = ro_s_reg * NPOS + ro_p_reg;
wire [AW-1:0] ro_addr = ro_addr32[AW-1:0];

reg        r1_valid_reg = 1'b0;
reg [7:0]  r1_g_reg = 0;
reg [AW-1:0] r1_addr_reg = 0;
reg [OCW-1:0] r1_o_reg = 0;
reg [VW-1:0] r1_idx_reg = 0;

// ---------------------------------------------------------------- memories per group
wire [ACC_W*NB*G-1:0] acc_q_flat;     // bank read data of all groups

genvar g, b;
generate
for (g = 0; g < G; g = g + 1) begin : grp
    reg [EW-1:0] wmem [0:FAN_IN-1];
    reg [EW-1:0] wq_reg = 0;
    always @(posedge clk) begin
        if (ld_here && ld_sel == 3'd0 && ld_group == g) begin
            wmem[ld_addr[FW-1:0]] <= {ld_data[8 +: OWN_W], ld_data[7:0]};
        end
        if (s0_valid) begin
            wq_reg <= wmem[s0_f];
        end
    end

    // stage 1: route by owner
    wire [OWN_W-1:0] own = wq_reg[8 +: OWN_W];
    wire signed [7:0] w = wq_reg[7:0];
    wire [31:0] addr1_32 = own * NPOS + s1_pos32;
    wire [AW-1:0] addr1 = addr1_32[AW-1:0];
    wire signed [15:0] prod1 = $signed({1'b0, s1_val_reg}) * w;

    reg [AW-1:0] addr2_reg = 0, addr2p_reg = 0;
    reg signed [15:0] prod2_reg = 0;
    reg signed [ACC_W-1:0] sum2p_reg = 0;
    wire [ACC_W*NB-1:0] bank_q;
    wire signed [ACC_W-1:0] rd2 = bank_q[s2_bank_reg*ACC_W +: ACC_W];
    // forward the previous write-back when it hit the same entry (read-modify-write hazard)
    wire fwd = s2p_valid_reg && s2p_bank_reg == s2_bank_reg && addr2p_reg == addr2_reg;
    wire signed [ACC_W-1:0] sum2 = (fwd ? sum2p_reg : rd2) + prod2_reg;

    always @(posedge clk) begin
        addr2_reg <= addr1;
        prod2_reg <= prod1;
        addr2p_reg <= addr2_reg;
        sum2p_reg <= sum2;
    end

    for (b = 0; b < NB; b = b + 1) begin : bank
        reg [ACC_W-1:0] accm [0:DEPTH-1];
        reg [ACC_W-1:0] q_reg = 0;
        // one write port: clear sweep, scatter write-back, or clear-after-readout
        wire we_clr = (state_reg == ST_CLEAR) && clr_reg < DEPTH;
        wire we_sc  = s2_valid_reg && s2_bank_reg == b;
        wire we_ro  = r1_valid_reg && r1_g_reg == g;
        wire [AW-1:0] ra = (state_reg == ST_READOUT) ? ro_addr : addr1;
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
        assign bank_q[b*ACC_W +: ACC_W] = q_reg;
    end
    assign acc_q_flat[g*NB*ACC_W +: NB*ACC_W] = bank_q;
end
endgenerate

// bias, mult, shift per kernel
reg [31:0] bias_mem [0:OUT_C-1];
reg [15:0] mult_mem [0:OUT_C-1];
reg [5:0]  shift_mem [0:OUT_C-1];
reg [31:0] bias_q_reg = 0;
reg [15:0] mult_q_reg = 0;
reg [5:0]  shift_q_reg = 0;
always @(posedge clk) begin
    if (ld_here && ld_sel == 3'd1) bias_mem[ld_addr[OCW-1:0]] <= ld_data;
    if (ld_here && ld_sel == 3'd2) mult_mem[ld_addr[OCW-1:0]] <= ld_data[15:0];
    if (ld_here && ld_sel == 3'd3) shift_mem[ld_addr[OCW-1:0]] <= ld_data[5:0];
    if (ld_here && ld_sel == 3'd4) k_reg <= ld_data;
    bias_q_reg  <= bias_mem[ro_o_reg];
    mult_q_reg  <= mult_mem[ro_o_reg];
    shift_q_reg <= shift_mem[ro_o_reg];
end

// ---------------------------------------------------------------- readout pipeline
// r1: bank data of all groups -> pick group, 2x2 max
wire [ACC_W*NB-1:0] r1_banks = acc_q_flat[r1_g_reg*NB*ACC_W +: NB*ACC_W];
function signed [ACC_W-1:0] smax(input signed [ACC_W-1:0] a, input signed [ACC_W-1:0] b2);
    smax = (a > b2) ? a : b2;
endfunction
wire signed [ACC_W-1:0] r1_pool = (NB == 4) ?
    smax(smax($signed(r1_banks[0 +: ACC_W]), $signed(r1_banks[ACC_W*(NB>1?1:0) +: ACC_W])),
         smax($signed(r1_banks[ACC_W*(NB>2?2:0) +: ACC_W]), $signed(r1_banks[ACC_W*(NB>3?3:0) +: ACC_W]))) :
    $signed(r1_banks[0 +: ACC_W]);

reg        r2_valid_reg = 1'b0;
reg signed [31:0] r2_acc_reg = 0;
reg [15:0] r2_mult_reg = 0;
reg [5:0]  r2_shift_reg = 0;
reg [OCW-1:0] r2_o_reg = 0;
reg [VW-1:0] r2_idx_reg = 0;

always @(posedge clk) begin
    r1_valid_reg <= ro_active_reg;
    r1_g_reg     <= ro_g_reg;
    r1_addr_reg  <= ro_addr;
    r1_o_reg     <= ro_o_reg;
    r1_idx_reg   <= ro_idx_reg;
    r2_valid_reg <= r1_valid_reg;
    r2_acc_reg   <= {{(32-ACC_W){r1_pool[ACC_W-1]}}, r1_pool} + $signed(bias_q_reg);
    r2_mult_reg  <= mult_q_reg;
    r2_shift_reg <= shift_q_reg;
    r2_o_reg     <= r1_o_reg;
    r2_idx_reg   <= r1_idx_reg;
    if (rst) begin
        r1_valid_reg <= 1'b0;
        r2_valid_reg <= 1'b0;
    end
end

wire       rq_valid;
wire [6:0] rq_y;
sk_requant #(.ACC_W(32)) requant_inst (
    .clk(clk), .in_valid(r2_valid_reg && !FINAL), .acc(r2_acc_reg), .mult(r2_mult_reg),
    .shift(r2_shift_reg), .out_valid(rq_valid), .y(rq_y)
);
reg [VW-1:0] r3_idx_reg = 0, r4_idx_reg = 0, r5_idx_reg = 0;
always @(posedge clk) begin
    r3_idx_reg <= r2_idx_reg;
    r4_idx_reg <= r3_idx_reg;
    r5_idx_reg <= r4_idx_reg;
end
wire rq_take = rq_valid && !rst;

// ---------------------------------------------------------------- histogram and threshold
reg [CNT_W-1:0] hist [0:127];
reg [7:0]  th_t_reg = 0;                  // bin being scanned (counts down)
reg        th_found_reg = 1'b0;
reg [31:0] th_above_reg = 0;              // count(v > t)
reg [6:0]  thr_reg = 0;                   // threshold T
reg [31:0] ties_reg = 0;                  // ties still to take
wire [CNT_W-1:0] th_cnt = hist[th_t_reg[6:0]];
wire [31:0] th_ge = th_above_reg + th_cnt;

always @(posedge clk) begin
    if (state_reg == ST_CLEAR && clr_reg < 128) begin
        hist[clr_reg[6:0]] <= 0;
    end else if (state_reg == ST_THRESH) begin
        hist[th_t_reg[6:0]] <= 0;
    end else if (rq_take) begin
        hist[rq_y] <= hist[rq_y] + 1'b1;
    end
end

// value memory (requantised outputs, flat index order)
reg [6:0] val_mem [0:N_OUT-1];
reg [6:0] val_q_reg = 0;
reg [VW-1:0] sel_idx_reg = 0;
always @(posedge clk) begin
    if (rq_take && !FINAL) begin
        val_mem[r5_idx_reg] <= rq_y;
    end
    val_q_reg <= val_mem[sel_idx_reg];
end

// ---------------------------------------------------------------- select scan
reg        sel_active_reg = 1'b0;
reg [OCW-1:0] sel_c_reg = 0;
reg [4:0]  sel_y_reg = 0, sel_x_reg = 0;
reg        sel1_valid_reg = 1'b0;
reg [VW-1:0] sel1_idx_reg = 0;
reg [10:0] sel1_c_reg = 0;
reg [4:0]  sel1_y_reg = 0, sel1_x_reg = 0;
wire sel_issue = sel_active_reg && !m_afull;
wire sel_last = (sel_idx_reg == N_OUT - 1);

wire sel1_win = sel1_valid_reg && val_q_reg != 0 &&
                (val_q_reg > thr_reg || (val_q_reg == thr_reg && ties_reg != 0));

reg [45:0] m_data_reg = 0;
reg        m_push_reg = 1'b0;
assign m_data = m_data_reg;
assign m_push = m_push_reg;

// ---------------------------------------------------------------- final layer: scores and argmax
reg [OUT_C*32-1:0] scores_reg = 0;
reg signed [31:0] best_reg = 0;
reg [7:0]  class_reg = 0;
reg        r_push_reg = 1'b0;
assign r_data = {tag_reg, class_reg, scores_reg};
assign r_push = r_push_reg;

// ---------------------------------------------------------------- control
reg [3:0] drain_reg = 0;

always @(posedge clk) begin
    m_push_reg <= 1'b0;
    r_push_reg <= 1'b0;

    case (state_reg)
        ST_CLEAR: begin
            clr_reg <= clr_reg + 1'b1;
            if (clr_reg == CLR_N - 1) begin
                state_reg <= ST_RUN;
            end
        end
        ST_RUN: begin
            if (s_take && s_end) begin
                tag_reg <= s_data[44];
                state_reg <= ST_DRAIN;
                drain_reg <= 0;
            end
        end
        ST_DRAIN: begin
            // wait for the last scatter operation to leave stage 2
            if (!it_active_reg && !s1_valid_reg && !s2_valid_reg) begin
                state_reg <= ST_READOUT;
                ro_active_reg <= 1'b1;
                ro_o_reg <= 0;
                ro_g_reg <= 0;
                ro_s_reg <= 0;
                ro_p_reg <= 0;
                ro_idx_reg <= 0;
                drain_reg <= 0;
            end
        end
        ST_READOUT: begin
            if (ro_active_reg) begin
                ro_idx_reg <= ro_idx_reg + 1'b1;
                if (ro_p_reg == NPOS - 1) begin
                    ro_p_reg <= 0;
                    ro_o_reg <= ro_o_reg + 1'b1;
                    if (ro_s_reg == N_PACK - 1) begin
                        ro_s_reg <= 0;
                        ro_g_reg <= ro_g_reg + 1'b1;
                    end else begin
                        ro_s_reg <= ro_s_reg + 1'b1;
                    end
                end else begin
                    ro_p_reg <= ro_p_reg + 1'b1;
                end
                if (ro_last) begin
                    ro_active_reg <= 1'b0;
                end
            end else begin
                // let the requantiser pipeline drain (r1, r2, 3 requant stages)
                drain_reg <= drain_reg + 1'b1;
                if (drain_reg == 4'd6) begin
                    if (FINAL) begin
                        state_reg <= ST_RESULT;
                    end else begin
                        state_reg <= ST_THRESH;
                        th_t_reg <= 8'd127;
                        th_found_reg <= 1'b0;
                        th_above_reg <= 0;
                        thr_reg <= 0;
                        ties_reg <= 0;
                    end
                end
            end
        end
        ST_THRESH: begin
            // T = largest t with count(v >= t) >= k; ties = k - count(v > T)
            if (!th_found_reg && th_ge >= k_reg) begin
                th_found_reg <= 1'b1;
                thr_reg <= th_t_reg[6:0];
                ties_reg <= k_reg - th_above_reg;
            end
            th_above_reg <= th_ge;
            th_t_reg <= th_t_reg - 1'b1;
            if (th_t_reg == 0) begin
                state_reg <= ST_SELECT;
                sel_active_reg <= 1'b1;
                sel_idx_reg <= 0;
                sel_c_reg <= 0;
                sel_y_reg <= 0;
                sel_x_reg <= 0;
            end
        end
        ST_SELECT: begin
            if (sel_issue) begin
                if (sel_last) begin
                    sel_active_reg <= 1'b0;
                end else begin
                    sel_idx_reg <= sel_idx_reg + 1'b1;
                end
                if (sel_x_reg == PW - 1) begin
                    sel_x_reg <= 0;
                    if (sel_y_reg == PH - 1) begin
                        sel_y_reg <= 0;
                        sel_c_reg <= sel_c_reg + 1'b1;
                    end else begin
                        sel_y_reg <= sel_y_reg + 1'b1;
                    end
                end else begin
                    sel_x_reg <= sel_x_reg + 1'b1;
                end
            end
            if (sel1_win) begin
                m_push_reg <= 1'b1;
                m_data_reg <= {1'b0, 1'b0, {{(16-VW){1'b0}}, sel1_idx_reg}, sel1_c_reg, sel1_y_reg,
                               sel1_x_reg, val_q_reg};
                if (val_q_reg == thr_reg) begin
                    ties_reg <= ties_reg - 1'b1;
                end
            end
            if (!sel_active_reg && !sel1_valid_reg) begin
                state_reg <= ST_END;
            end
        end
        ST_END: begin
            if (!m_afull) begin
                m_push_reg <= 1'b1;
                m_data_reg <= {1'b1, tag_reg, 44'd0};
                state_reg <= ST_RUN;
            end
        end
        ST_RESULT: begin
            if (!r_afull) begin
                r_push_reg <= 1'b1;
                state_reg <= ST_RUN;
            end
        end
        default: state_reg <= ST_RUN;
    endcase

    // final layer: collect scores in kernel order; argmax with ties to the lowest index
    if (FINAL && r2_valid_reg) begin
        scores_reg[r2_o_reg*32 +: 32] <= r2_acc_reg;
        if (r2_o_reg == 0 || r2_acc_reg > best_reg) begin
            best_reg <= r2_acc_reg;
            class_reg <= r2_o_reg;
        end
    end

    if (rst) begin
        state_reg <= ST_CLEAR;
        clr_reg <= 0;
        ro_active_reg <= 1'b0;
        sel_active_reg <= 1'b0;
        m_push_reg <= 1'b0;
        r_push_reg <= 1'b0;
    end
end

always @(posedge clk) begin
    sel1_valid_reg <= sel_issue;
    sel1_idx_reg <= sel_idx_reg;
    sel1_c_reg <= sel_c_reg;
    sel1_y_reg <= sel_y_reg;
    sel1_x_reg <= sel_x_reg;
    if (rst) begin
        sel1_valid_reg <= 1'b0;
    end
end

assign busy = (state_reg != ST_RUN) || it_active_reg || s1_valid_reg || s2_valid_reg;
assign stall = (state_reg == ST_RESULT && r_afull) || ((state_reg == ST_SELECT || state_reg == ST_END) && m_afull);

endmodule

`resetall
