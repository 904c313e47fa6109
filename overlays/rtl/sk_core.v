// sk_core: one copy of the sparse keyword-spotting network (input word -> 12 scores + class)
`default_nettype none
`timescale 1ns / 1ps

// A layer pipeline: conv1 (sk_conv1, reads the input beats) -> conv2 -> fc1 -> fc2,
// each layer its own engine, connected by winner FIFOs deep enough for k winners, so
// that different words occupy different layers at the same time.
module sk_core #(
    parameter L1_FIFO_DEPTH = 2048,  // conv1 -> conv2 winners (>= k1 + 1 keeps conv1 from stalling; shipped k1 = 1505)
    parameter L2_FIFO_DEPTH = 256,   // conv2 -> fc1 winners (>= k2 + 1)
    parameter L3_FIFO_DEPTH = 256,   // fc1 -> fc2 winners (>= k3 + 1)
    parameter RES_DEPTH     = 2,     // results waiting for the collector (power of two)
    // engine sizes (the defaults are the full-speed core; CONV1_PHASES 4, CONV2_PHASES 2, FC1_LANES 2
    // is the small configuration: about half the multipliers, about twice the cycles per word)
    parameter CONV1_PHASES  = 2,     // sk_conv1 cycles per conv position: 1, 2 or 4
    parameter CONV2_PHASES  = 1,     // sk_conv2 cycles per winner: 1 or 2
    parameter FC1_LANES     = 8,     // sk_fc (fc1) readout lanes: 1, 2, 4 or 8
    parameter CONV2_WBRAM   = 0,     // 1: sk_conv2's weights in block RAM (PHASES 2: 25 RAMB36 for ~4.6k LUT)
    parameter CONV2_RBRAM   = 0,     // 1: sk_conv2's readout copies in block RAM (PHASES 2: 40 BRAM36 for ~2.6k LUT)
    parameter FC1_PINGPONG  = 1      // 0: one accumulator buffer in fc1 (its scatter waits for its back end: ~4k LUT less)
) (
    input  wire        clk,
    input  wire        rst,

    // weight load bus
    input  wire        ld_we,
    input  wire [1:0]  ld_layer,
    input  wire [2:0]  ld_sel,
    input  wire [7:0]  ld_group,
    input  wire [15:0] ld_addr,
    input  wire [31:0] ld_data,

    // input beats (one word = 128 beats)
    input  wire [63:0] s_axis_tdata,
    input  wire        s_axis_tvalid,
    output wire        s_axis_tready,
    input  wire        s_axis_tlast,

    // results: {tag, class[7:0], score[11] .. score[0]}
    output wire [392:0] m_res_data,
    output wire        m_res_valid,
    input  wire        m_res_ready,

    output wire        busy,
    output wire        stall,       // a finished result waits for room in the result FIFO
    output wire        word_done    // pulses when a result enters the result FIFO
);

wire [45:0] w1_d, w1_q, w2_d, w2_q, w3_d, w3_q;
wire        w1_push, w1_afull, w1_valid, w1_ready;
wire        w2_push, w2_afull, w2_valid, w2_ready;
wire        w3_push, w3_afull, w3_valid, w3_ready;
wire [392:0] res_d;
wire        res_push, res_afull;
wire [4:0]  busy_v;
wire [3:0]  stall_v;

// conv1: dense-input engine (sk_conv1.v): reads the input beats itself (two-word buffer, TLAST
// framing), conv + 2x2 max-pool + requant, k-WTA select; winners in idx order
sk_conv1 #(.LAYER_ID(0), .ACC_W(20), .PHASES(CONV1_PHASES)) conv1_inst (
    .clk(clk), .rst(rst),
    .ld_we(ld_we), .ld_layer(ld_layer), .ld_sel(ld_sel), .ld_group(ld_group), .ld_addr(ld_addr), .ld_data(ld_data),
    .s_axis_tdata(s_axis_tdata), .s_axis_tvalid(s_axis_tvalid), .s_axis_tready(s_axis_tready),
    .s_axis_tlast(s_axis_tlast),
    .m_data(w1_d), .m_push(w1_push), .m_afull(w1_afull),
    .in_busy(busy_v[0]), .busy(busy_v[1]), .stall(stall_v[0])
);

sk_fifo #(.WIDTH(46), .DEPTH(L1_FIFO_DEPTH), .AFULL_SLACK(4)) fifo1_inst (
    .clk(clk), .rst(rst), .s_data(w1_d), .s_valid(w1_push), .s_ready(), .s_afull(w1_afull),
    .m_data(w1_q), .m_valid(w1_valid), .m_ready(w1_ready), .count()
);

// conv2: dedicated engine (sk_conv2.v): one winner per CONV2_PHASES cycles, 25 taps x 8 / CONV2_PHASES
// packed kernels in parallel
sk_conv2 #(.LAYER_ID(1), .ACC_W(26), .PHASES(CONV2_PHASES), .WBRAM(CONV2_WBRAM), .RBRAM(CONV2_RBRAM)) conv2_inst (
    .clk(clk), .rst(rst),
    .ld_we(ld_we), .ld_layer(ld_layer), .ld_sel(ld_sel), .ld_group(ld_group), .ld_addr(ld_addr), .ld_data(ld_data),
    .s_data(w1_q), .s_valid(w1_valid), .s_ready(w1_ready),
    .m_data(w2_d), .m_push(w2_push), .m_afull(w2_afull),
    .busy(busy_v[2]), .stall(stall_v[1])
);

sk_fifo #(.WIDTH(46), .DEPTH(L2_FIFO_DEPTH), .AFULL_SLACK(4)) fifo2_inst (
    .clk(clk), .rst(rst), .s_data(w2_d), .s_valid(w2_push), .s_ready(), .s_afull(w2_afull),
    .m_data(w2_q), .m_valid(w2_valid), .m_ready(w2_ready), .count()
);

sk_fc #(.LAYER_ID(2), .FAN_IN(1600), .OUT_C(1500), .N_PACK(25), .FINAL(0), .ACC_W(26), .LANES(FC1_LANES),
        .PINGPONG(FC1_PINGPONG)) fc1_inst (
    .clk(clk), .rst(rst),
    .ld_we(ld_we), .ld_layer(ld_layer), .ld_sel(ld_sel), .ld_group(ld_group), .ld_addr(ld_addr), .ld_data(ld_data),
    .s_data(w2_q), .s_valid(w2_valid), .s_ready(w2_ready),
    .m_data(w3_d), .m_push(w3_push), .m_afull(w3_afull),
    .r_data(), .r_push(), .r_afull(1'b0), .busy(busy_v[3]), .stall(stall_v[2])
);

sk_fifo #(.WIDTH(46), .DEPTH(L3_FIFO_DEPTH), .AFULL_SLACK(4)) fifo3_inst (
    .clk(clk), .rst(rst), .s_data(w3_d), .s_valid(w3_push), .s_ready(), .s_afull(w3_afull),
    .m_data(w3_q), .m_valid(w3_valid), .m_ready(w3_ready), .count()
);

wire [45:0] unused_m;
wire        unused_push;
sk_fc #(.LAYER_ID(3), .FAN_IN(1500), .OUT_C(12), .N_PACK(1), .FINAL(1), .ACC_W(26), .LANES(1),
        .PINGPONG(1)) fc2_inst (
    .clk(clk), .rst(rst),
    .ld_we(ld_we), .ld_layer(ld_layer), .ld_sel(ld_sel), .ld_group(ld_group), .ld_addr(ld_addr), .ld_data(ld_data),
    .s_data(w3_q), .s_valid(w3_valid), .s_ready(w3_ready),
    .m_data(unused_m), .m_push(unused_push), .m_afull(1'b0),
    .r_data(res_d), .r_push(res_push), .r_afull(res_afull), .busy(busy_v[4]), .stall(stall_v[3])
);

sk_fifo #(.WIDTH(393), .DEPTH(RES_DEPTH), .AFULL_SLACK(1)) res_fifo_inst (
    .clk(clk), .rst(rst), .s_data(res_d), .s_valid(res_push), .s_ready(), .s_afull(res_afull),
    .m_data(m_res_data), .m_valid(m_res_valid), .m_ready(m_res_ready), .count()
);

assign busy = |busy_v || w1_valid || w2_valid || w3_valid;
assign stall = stall_v[3];
assign word_done = res_push;

endmodule

`resetall
